/**
 * What a handle reports through @flowforge/observability's registry, against
 * the shared server (keys under this file's prefix): the command histogram by
 * command, the error counter by code, the connection gauge, one name per live
 * handle per registry, and an exposition `promtool check metrics` accepts.
 */
import { spawn } from 'node:child_process';
import type { Redis as IORedis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMetrics } from '@flowforge/observability';
import { isRedisError } from '../src/index.js';
import {
  deletePrefix,
  Handles,
  rejectionOf,
  SHARED_PORT,
  standaloneTopology,
  uniquePrefix,
  writerFor,
} from './support/handles.js';

const P = uniquePrefix('metrics');
const topology = standaloneTopology(SHARED_PORT);
const handles = new Handles();
let writer: IORedis;

beforeAll(async () => {
  writer = writerFor(SHARED_PORT);
  await writer.set(`${P}s`, 'v');
  await writer.hset(`${P}h`, { f: '1' });
});

afterAll(async () => {
  await handles.closeAll();
  await deletePrefix(writer, P);
  writer.disconnect();
});

function sample(text: string, line: string): number | undefined {
  const found = text.split('\n').find((candidate) => candidate.startsWith(`${line} `));
  return found === undefined ? undefined : Number(found.slice(line.length + 1));
}

describe('metrics', () => {
  it('renders the histogram by command, the errors by code and the connection gauge', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const redis = handles.open({ topology, name: 'm', metrics });
    await redis.data.get(`${P}s`);
    await redis.data.get(`${P}s`);
    await redis.data.hgetall(`${P}h`);
    await rejectionOf(redis.data.get(`${P}h`));
    await rejectionOf(
      (redis.data as unknown as { set(k: string, v: string): Promise<unknown> }).set(`${P}s`, 'x'),
    );
    await rejectionOf(redis.ownedKeyspace(`${P}cache:`).get('elsewhere'));
    await redis.health();

    const text = await redis.data.get(`${P}s`).then(() => metrics.render());
    const duration = 'flowforge_redis_command_duration_seconds';
    expect(sample(text, `${duration}_count{client="m",command="get"}`)).toBe(4);
    expect(sample(text, `${duration}_bucket{client="m",command="get",le="+Inf"}`)).toBe(4);
    expect(sample(text, `${duration}_count{client="m",command="hgetall"}`)).toBe(1);
    expect(sample(text, `${duration}_count{client="m",command="ping"}`)).toBe(1);
    expect(sample(text, `${duration}_sum{client="m",command="get"}`)).toBeGreaterThan(0);
    // Commands never sent have no series.
    expect(text).not.toContain('command="zrange"');
    expect(sample(text, 'flowforge_redis_errors_total{client="m",code="WRONG_TYPE"}')).toBe(1);
    expect(sample(text, 'flowforge_redis_errors_total{client="m",code="READ_ONLY"}')).toBe(1);
    expect(sample(text, 'flowforge_redis_errors_total{client="m",code="INVALID_ARGUMENT"}')).toBe(
      1,
    );
    expect(sample(text, 'flowforge_redis_connected{client="m"}')).toBe(1);
    expect(sample(text, 'flowforge_redis_reconnects_total{client="m"}')).toBe(0);
    expect(text).toContain('# TYPE flowforge_redis_command_duration_seconds histogram');
    // Keys never become labels.
    expect(text).not.toContain(P);

    await redis.close();
    const after = await metrics.render();
    expect(after).not.toContain('flowforge_redis_connected{client="m"}');
    expect(sample(after, `${duration}_count{client="m",command="get"}`)).toBe(4);
  });

  it('one live handle per name and registry; a closed name can be reused and keeps counting', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const first = handles.open({ topology, name: 'dup', metrics });
    await first.data.get(`${P}s`);
    let conflict: unknown;
    try {
      handles.open({ topology, name: 'dup', metrics });
    } catch (error) {
      conflict = error;
    }
    expect(isRedisError(conflict, 'INVALID_OPTIONS')).toBe(true);
    // Another registry, or another name, is fine.
    handles.open({ topology, name: 'dup', metrics: createMetrics({ defaultMetrics: false }) });
    handles.open({ topology, name: 'dup2', metrics });

    await first.close();
    const again = handles.open({ topology, name: 'dup', metrics });
    await again.data.get(`${P}s`);
    const text = await metrics.render();
    expect(
      sample(text, 'flowforge_redis_command_duration_seconds_count{client="dup",command="get"}'),
    ).toBe(2);
  });

  it('is valid for promtool check metrics', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const redis = handles.open({ topology, name: 'promtool', metrics });
    await redis.data.get(`${P}s`);
    await rejectionOf(redis.data.get(`${P}h`));
    const text = await metrics.render();
    const child = spawn('/usr/bin/promtool', ['check', 'metrics'], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stdin.end(text);
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(output.trim()).toBe('');
    expect(code).toBe(0);
  });
});
