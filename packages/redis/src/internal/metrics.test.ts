import { describe, expect, it } from 'vitest';
import { createMetrics } from '@flowforge/observability';
import { isRedisError } from '../errors.js';
import { createRedisInstruments, DURATION_BUCKETS, observe, type CommandTally } from './metrics.js';

describe('observe', () => {
  it('counts into the first bucket whose bound is at least the duration', () => {
    const tally: CommandTally = {
      count: 0,
      sum: 0,
      buckets: new Float64Array(DURATION_BUCKETS.length + 1),
    };
    observe(tally, 0.05); // 0.00005 s → first bucket
    observe(tally, 0.25); // exactly 0.00025 s → second bucket (le is inclusive)
    observe(tally, 60_000); // past the last bound → +Inf
    expect(tally.count).toBe(3);
    expect(tally.sum).toBeCloseTo(60.0003, 6);
    expect(tally.buckets[0]).toBe(1);
    expect(tally.buckets[1]).toBe(1);
    expect(tally.buckets[DURATION_BUCKETS.length]).toBe(1);
  });
});

describe('createRedisInstruments', () => {
  it('renders cumulative buckets, errors, the gauge and reconnects', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    let connected = true;
    const instruments = createRedisInstruments(metrics, 'main', () => connected);
    const get = instruments.tally('get');
    expect(instruments.tally('get')).toBe(get);
    observe(get, 0.3);
    observe(get, 3);
    instruments.tally('hgetall'); // declared, never used: no series
    instruments.error('TIMEOUT');
    instruments.error('TIMEOUT');
    instruments.reconnect();
    const text = await metrics.render();
    expect(text).toContain(
      'flowforge_redis_command_duration_seconds_bucket{client="main",command="get",le="0.00025"} 0',
    );
    expect(text).toContain(
      'flowforge_redis_command_duration_seconds_bucket{client="main",command="get",le="0.0005"} 1',
    );
    expect(text).toContain(
      'flowforge_redis_command_duration_seconds_bucket{client="main",command="get",le="0.005"} 2',
    );
    expect(text).toContain(
      'flowforge_redis_command_duration_seconds_bucket{client="main",command="get",le="+Inf"} 2',
    );
    expect(text).toContain(
      'flowforge_redis_command_duration_seconds_count{client="main",command="get"} 2',
    );
    expect(text).not.toContain('command="hgetall"');
    expect(text).toContain('flowforge_redis_errors_total{client="main",code="TIMEOUT"} 2');
    expect(text).toContain('flowforge_redis_connected{client="main"} 1');
    expect(text).toContain('flowforge_redis_reconnects_total{client="main"} 1');
    connected = false;
    expect(await metrics.render()).toContain('flowforge_redis_connected{client="main"} 0');
  });

  it('refuses a second live handle of one name on one registry; a released name goes on counting', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const first = createRedisInstruments(metrics, 'main', () => true);
    first.error('TIMEOUT');
    let conflict: unknown;
    try {
      createRedisInstruments(metrics, 'main', () => true);
    } catch (error) {
      conflict = error;
    }
    expect(isRedisError(conflict, 'INVALID_OPTIONS')).toBe(true);
    expect((conflict as Error).message).toBe(
      '@flowforge/redis: a handle named "main" already reports to this metrics registry: give each handle its own `name`',
    );
    first.release();
    const second = createRedisInstruments(metrics, 'main', () => true);
    second.error('TIMEOUT');
    expect(await metrics.render()).toContain(
      'flowforge_redis_errors_total{client="main",code="TIMEOUT"} 2',
    );
  });
});
