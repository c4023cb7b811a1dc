import { randomBytes } from 'node:crypto';
import { METRIC_POINTS_TABLE } from '@flowforge/widgets';

// The server and users scripts/services sets up: `flowforge` writes (standing in for
// the data pipeline), `flowforge_reader` (readonly=1) is what the apps read as.
const SERVER = 'http://127.0.0.1:8123';
const WRITER = { user: 'flowforge', password: 'flowforge' } as const;

/** ClickHouse as the app under test reaches it: CLICKHOUSE_URL and its read-only user. */
export const CLICKHOUSE_READER: {
  readonly url: string;
  readonly user: string;
  readonly password: string;
} = { url: SERVER, user: 'flowforge_reader', password: 'flowforge_reader' };

/** One row of `metric_points`, dated relative to the server's today(). */
export interface MetricPointRow {
  readonly tenantId: string;
  readonly metric: string;
  /** Days before the server's today(). */
  readonly daysAgo: number;
  readonly value: number;
}

/** A ClickHouse database of its own holding `metric_points`; see {@link createMetricStore}. */
export interface MetricStore {
  /** CLICKHOUSE_DATABASE of the app under test. */
  readonly database: string;
  /** The server's today() (YYYY-MM-DD), so that expectations count days as the server does. */
  readonly today: string;
  insert(rows: readonly MetricPointRow[]): Promise<void>;
  drop(): Promise<void>;
}

/**
 * Sends `query` over ClickHouse's HTTP interface as the writer (no client
 * library: the apps' own reads go through @flowforge/clickhouse), with `data`
 * as the body of an INSERT.
 */
async function asWriter(query: string, data?: string): Promise<string> {
  const url = new URL(SERVER);
  url.searchParams.set('user', WRITER.user);
  url.searchParams.set('password', WRITER.password);
  if (data !== undefined) url.searchParams.set('query', query);
  const response = await fetch(url, { method: 'POST', body: data ?? query });
  const text = await response.text();
  if (!response.ok) throw new Error(`ClickHouse refused ${query.split('\n')[0]}: ${text}`);
  return text;
}

/**
 * A database of its own with the `metric_points` table the widgets package
 * reads, written by a user that is not the apps' read-only one.
 */
export async function createMetricStore(prefix: string): Promise<MetricStore> {
  const database = `ff_${prefix}_${randomBytes(4).toString('hex')}`;
  await asWriter(`CREATE DATABASE ${database}`);
  await asWriter(
    `CREATE TABLE ${database}.${METRIC_POINTS_TABLE}
      (tenant_id UUID, metric String, ts DateTime, value Float64)
      ENGINE = MergeTree ORDER BY (tenant_id, metric, ts)`,
  );
  const today = (await asWriter('SELECT toString(today())')).trim();
  return {
    database,
    today,
    async insert(rows) {
      const lines = rows.map((row) =>
        JSON.stringify({
          tenant_id: row.tenantId,
          metric: row.metric,
          ts: `${dayBefore(today, row.daysAgo)} 12:00:00`,
          value: row.value,
        }),
      );
      await asWriter(
        `INSERT INTO ${database}.${METRIC_POINTS_TABLE} FORMAT JSONEachRow`,
        lines.join('\n'),
      );
    },
    async drop() {
      await asWriter(`DROP DATABASE IF EXISTS ${database}`);
    },
  };
}

/** The day `daysAgo` days before `today` (both YYYY-MM-DD). */
export function dayBefore(today: string, daysAgo: number): string {
  const date = new Date(`${today}T12:00:00Z`);
  date.setUTCDate(date.getUTCDate() - daysAgo);
  return date.toISOString().slice(0, 10);
}
