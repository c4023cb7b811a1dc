/**
 * Engine: clickhouse-server 18.16, the shared one of scripts/services on 8123.
 * What the metrics say after real queries: durations by outcome, rows returned,
 * errors by code; and what 18.16 does not send (no X-ClickHouse-Summary header,
 * so rows and bytes read stay 0; chdb's are checked in chdb.int.test.ts).
 */
import { createMetrics } from '@flowforge/observability';
import { afterAll, describe, expect, it } from 'vitest';
import { createClickHouse } from '../src/index.js';
import { consume, drain, expectCode, sampleValue } from './support/assert.js';
import { READER, SHARED_URL } from './support/shared-server.js';

const metrics = createMetrics({ defaultMetrics: false });
const clickhouse = createClickHouse({ url: SHARED_URL, ...READER, metrics });
afterAll(() => clickhouse.close());

describe('18.16: metrics', () => {
  it('are rendered after queries, errors counted by code', async () => {
    await clickhouse.query('SELECT number FROM system.numbers LIMIT 3');
    await drain(clickhouse.stream('SELECT number FROM system.numbers LIMIT 5'));
    const taken = await consume(
      clickhouse.stream('SELECT number FROM system.numbers LIMIT 100000'),
      (count) => count < 2,
    );
    expect(taken).toBe(2);
    await expectCode(clickhouse.query('SELEC 1'), 'SYNTAX_ERROR');
    await expectCode(clickhouse.query('SELECT sleep(1)', undefined, { timeoutMs: 200 }), 'TIMEOUT');
    await expectCode(
      clickhouse.query('CREATE TABLE flowforge.never (x UInt8) ENGINE = Memory'),
      'READONLY',
    );
    await expectCode(clickhouse.query('SELECT {x:UInt8}', { x: -1 }), 'INVALID_ARGUMENT');

    const text = await metrics.render();
    const duration = 'flowforge_clickhouse_query_duration_seconds_count';
    expect(sampleValue(text, duration, { outcome: 'ok' })).toBe(3);
    expect(sampleValue(text, duration, { outcome: 'error' })).toBe(4);
    expect(sampleValue(text, 'flowforge_clickhouse_result_rows_total')).toBe(3 + 5 + 2);
    for (const code of ['SYNTAX_ERROR', 'TIMEOUT', 'READONLY', 'INVALID_ARGUMENT']) {
      expect(sampleValue(text, 'flowforge_clickhouse_errors_total', { code }), code).toBe(1);
    }
    expect(sampleValue(text, 'flowforge_clickhouse_rows_read_total')).toBe(0);
    expect(sampleValue(text, 'flowforge_clickhouse_bytes_read_total')).toBe(0);
    expect(text).not.toMatch(/SELECT|system\.numbers/);
    expect(text).toContain('# TYPE flowforge_clickhouse_query_duration_seconds histogram');
    expect(text).toContain('# TYPE flowforge_clickhouse_errors_total counter');
  });
});
