import { describe, expect, it } from 'vitest';
import { createMetrics } from '@flowforge/observability';
import { isMaterializeError } from '../errors.js';
import { createInstruments } from './metrics.js';

describe('createInstruments', () => {
  it('renders the gauges, counters and pool counts at scrape time', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    let pool = { total: 3, idle: 1, waiting: 0 };
    const instruments = createInstruments(metrics, 'main', () => pool);
    instruments.subscriptionStarted();
    instruments.subscriptionStarted();
    instruments.subscriptionEnded();
    instruments.rows(5);
    instruments.reconnect();
    instruments.error('CANCELLED');
    instruments.error('CANCELLED');
    const text = await metrics.render();
    expect(text).toContain('flowforge_materialize_subscriptions_active{client="main"} 1');
    expect(text).toContain('flowforge_materialize_rows_streamed_total{client="main"} 5');
    expect(text).toContain('flowforge_materialize_reconnects_total{client="main"} 1');
    expect(text).toContain('flowforge_materialize_errors_total{client="main",code="CANCELLED"} 2');
    expect(text).toContain('flowforge_materialize_pool_connections{client="main"} 3');
    expect(text).toContain('flowforge_materialize_pool_idle_connections{client="main"} 1');
    expect(text).toContain('flowforge_materialize_pool_waiting_requests{client="main"} 0');
    pool = { total: 4, idle: 0, waiting: 2 };
    expect(await metrics.render()).toContain(
      'flowforge_materialize_pool_waiting_requests{client="main"} 2',
    );
    instruments.release();
    const after = await metrics.render();
    expect(after).not.toContain('flowforge_materialize_pool_connections{client="main"}');
    expect(after).not.toContain('flowforge_materialize_subscriptions_active{client="main"}');
    expect(after).toContain('flowforge_materialize_rows_streamed_total{client="main"} 5');
  });

  it('refuses a second live handle of one name on one registry; a released name is reused', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const pool = (): { total: number; idle: number; waiting: number } => ({
      total: 0,
      idle: 0,
      waiting: 0,
    });
    const first = createInstruments(metrics, 'm', pool);
    first.rows(2);
    let conflict: unknown;
    try {
      createInstruments(metrics, 'm', pool);
    } catch (error) {
      conflict = error;
    }
    expect(isMaterializeError(conflict, 'INVALID_OPTIONS')).toBe(true);
    expect((conflict as Error).message).toBe(
      '@flowforge/materialize: a handle named "m" already reports to this metrics registry: give each handle its own `name`',
    );
    expect(() =>
      createInstruments(createMetrics({ defaultMetrics: false }), 'm', pool),
    ).not.toThrow();
    first.release();
    const again = createInstruments(metrics, 'm', pool);
    again.rows(1);
    expect(await metrics.render()).toContain(
      'flowforge_materialize_rows_streamed_total{client="m"} 3',
    );
  });
});
