import { createMetrics } from '@flowforge/observability';
import { describe, expect, it } from 'vitest';
import { createClickHouseMetrics } from './metrics.js';

function sample(text: string, line: string): number | undefined {
  const found = text.split('\n').find((entry) => entry.startsWith(`${line} `));
  return found === undefined ? undefined : Number(found.slice(line.length + 1));
}

describe('createClickHouseMetrics', () => {
  it('observes durations by outcome, sums rows and bytes, counts errors by code', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const instruments = createClickHouseMetrics(metrics);
    instruments.finished('ok', 0.002, { resultRows: 3, readRows: 10, readBytes: 80 });
    instruments.finished('ok', 0.004, { resultRows: 2, readRows: undefined, readBytes: undefined });
    instruments.finished('error', 0.5, {
      resultRows: 0,
      readRows: undefined,
      readBytes: undefined,
    });
    instruments.failed('TIMEOUT');
    const text = await metrics.render();
    expect(sample(text, 'flowforge_clickhouse_query_duration_seconds_count{outcome="ok"}')).toBe(2);
    expect(sample(text, 'flowforge_clickhouse_query_duration_seconds_count{outcome="error"}')).toBe(
      1,
    );
    expect(sample(text, 'flowforge_clickhouse_result_rows_total')).toBe(5);
    expect(sample(text, 'flowforge_clickhouse_rows_read_total')).toBe(10);
    expect(sample(text, 'flowforge_clickhouse_bytes_read_total')).toBe(80);
    expect(sample(text, 'flowforge_clickhouse_errors_total{code="TIMEOUT"}')).toBe(1);
  });

  it('lets two handles share one registry (declared once, tallies summed)', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    createClickHouseMetrics(metrics).finished('ok', 0.001, {
      resultRows: 1,
      readRows: 1,
      readBytes: 1,
    });
    createClickHouseMetrics(metrics).finished('ok', 0.001, {
      resultRows: 2,
      readRows: 2,
      readBytes: 2,
    });
    const text = await metrics.render();
    expect(sample(text, 'flowforge_clickhouse_result_rows_total')).toBe(3);
    expect(sample(text, 'flowforge_clickhouse_query_duration_seconds_count{outcome="ok"}')).toBe(2);
  });
});
