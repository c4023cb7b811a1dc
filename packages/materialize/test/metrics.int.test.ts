/**
 * What a handle reports through @flowforge/observability's registry against
 * the wire double: rows streamed, reconnects, errors by code, live
 * subscriptions, the pool's counts at scrape time; and an exposition that
 * `promtool check metrics` accepts.
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMetrics } from '@flowforge/observability';
import { Handles, uniqueName } from './support/handles.js';
import { startMaterializeDouble, type MaterializeDouble } from '@flowforge/materialize-double';
import { collect, iterationError, updates } from './support/streams.js';

let server: MaterializeDouble;
const handles = new Handles();

beforeAll(async () => {
  server = await startMaterializeDouble();
});
afterAll(async () => {
  await handles.closeAll();
  await server.stop();
});

function sample(text: string, line: string): number | undefined {
  const found = text.split('\n').find((candidate) => candidate.startsWith(`${line} `));
  return found === undefined ? undefined : Number(found.slice(line.length + 1));
}

describe('metrics', () => {
  it('counts rows, reconnects and errors; reports live subscriptions and the pool at scrape time', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const mz = handles.open({ url: server.url, metrics, name: 'm' });
    const name = uniqueName('metrics');
    server.defineView(name, [{ name: 'n', type: 'int4' }]);
    const iterator = mz.subscribe(name, { progress: true });
    await iterator.next();
    server.insert(name, [{ n: 1 }, { n: 2 }]);
    await collect(iterator, (items) => updates(items).length === 2);
    let text = await metrics.render();
    expect(sample(text, 'flowforge_materialize_subscriptions_active{client="m"}')).toBe(1);
    expect(sample(text, 'flowforge_materialize_pool_connections{client="m"}')).toBe(1);
    expect(sample(text, 'flowforge_materialize_pool_idle_connections{client="m"}')).toBe(0);
    expect(sample(text, 'flowforge_materialize_pool_waiting_requests{client="m"}')).toBe(0);

    server.dropConnections();
    server.insert(name, [{ n: 3 }]);
    await collect(iterator, (items) => updates(items).length === 1);
    await iterator.return?.();
    await iterationError(mz.subscribe(uniqueName('missing')));

    text = await metrics.render();
    expect(sample(text, 'flowforge_materialize_rows_streamed_total{client="m"}')).toBe(3);
    expect(
      sample(text, 'flowforge_materialize_reconnects_total{client="m"}'),
    ).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'flowforge_materialize_errors_total{client="m",code="UNKNOWN_VIEW"}')).toBe(
      1,
    );
    expect(sample(text, 'flowforge_materialize_subscriptions_active{client="m"}')).toBe(0);
    expect(sample(text, 'flowforge_materialize_pool_idle_connections{client="m"}')).toBe(
      sample(text, 'flowforge_materialize_pool_connections{client="m"}'),
    );
    expect(text).toContain('# TYPE flowforge_materialize_rows_streamed_total counter');
    expect(text).toContain('# TYPE flowforge_materialize_pool_connections gauge');
    // View names and filter values never become labels.
    expect(text).not.toContain(name);

    await mz.close();
    const after = await metrics.render();
    expect(after).not.toContain('flowforge_materialize_pool_connections{client="m"}');
    expect(sample(after, 'flowforge_materialize_rows_streamed_total{client="m"}')).toBe(3);
  });

  it('is valid for promtool check metrics', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const mz = handles.open({ url: server.url, metrics, name: 'promtool' });
    await mz.health();
    await iterationError(mz.subscribe(uniqueName('missing')));
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
