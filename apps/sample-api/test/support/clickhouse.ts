import { randomBytes } from 'node:crypto';
import { createClient, type ClickHouseClient } from '@clickhouse/client';

// The server and users scripts/services sets up: flowforge writes (the tests'
// writer, standing in for the data pipeline), flowforge_reader (readonly=1) is the app.
export const CLICKHOUSE_URL = 'http://127.0.0.1:8123';
export const READER = { user: 'flowforge_reader', password: 'flowforge_reader' } as const;

export interface MetricPointRow {
  readonly tenant_id: string;
  readonly metric: string;
  /** Days before the server's today(). */
  readonly daysAgo: number;
  readonly value: number;
}

/**
 * A database of its own holding the app's `metric_points` table, filled by a
 * writer that is not the app's read-only client; `drop()` removes it.
 */
export async function createMetricStore(prefix: string): Promise<{
  readonly database: string;
  /** The server's today(), so that tests compute days as the server does. */
  readonly today: string;
  insert(rows: readonly MetricPointRow[]): Promise<void>;
  drop(): Promise<void>;
}> {
  const database = `ff_${prefix}_${randomBytes(4).toString('hex')}`;
  const writer: ClickHouseClient = createClient({
    url: CLICKHOUSE_URL,
    username: 'flowforge',
    password: 'flowforge',
  });
  await writer.command({ query: `CREATE DATABASE ${database}` });
  await writer.command({
    query: `CREATE TABLE ${database}.metric_points
      (tenant_id UUID, metric String, ts DateTime, value Float64)
      ENGINE = MergeTree ORDER BY (tenant_id, metric, ts)`,
  });
  const result = await writer.query({
    query: 'SELECT toString(today()) AS today',
    format: 'JSONEachRow',
  });
  const [{ today } = { today: '' }] = await result.json<{ today: string }>();
  return {
    database,
    today,
    async insert(rows) {
      await writer.insert({
        table: `${database}.metric_points`,
        format: 'JSONEachRow',
        values: rows.map((row) => ({
          tenant_id: row.tenant_id,
          metric: row.metric,
          ts: `${dayBefore(today, row.daysAgo)} 12:00:00`,
          value: row.value,
        })),
      });
    },
    async drop() {
      try {
        await writer.command({ query: `DROP DATABASE IF EXISTS ${database}` });
      } finally {
        await writer.close();
      }
    },
  };
}

/** The day `daysAgo` days before `today` (YYYY-MM-DD). */
export function dayBefore(today: string, daysAgo: number): string {
  const date = new Date(`${today}T12:00:00Z`);
  date.setUTCDate(date.getUTCDate() - daysAgo);
  return date.toISOString().slice(0, 10);
}
