/**
 * The shared clickhouse-server 18.16 of scripts/services (127.0.0.1:8123), and a
 * writer for test data: a raw @clickhouse/client as the full-access user
 * `flowforge`, never the read-only handle under test. Each test file creates
 * its own table (a unique name) in database `flowforge` and drops it in
 * afterAll; the server itself is never stopped or reconfigured here (other
 * suites use it concurrently; see clickhouse-server.ts for a private one).
 */
import { randomUUID } from 'node:crypto';
import { createClient, ClickHouseLogLevel, type ClickHouseClient } from '@clickhouse/client';

export const SHARED_URL = 'http://127.0.0.1:8123';
export const DATABASE = 'flowforge';
/** Full access (profile default, readonly=0). */
export const WRITER = { user: 'flowforge', password: 'flowforge' } as const;
/** Profile readonly=1. */
export const READER = { user: 'flowforge_reader', password: 'flowforge_reader' } as const;

/** A table name unique to this test file and run: `ff_<tag>_<random>`. */
export function uniqueTable(tag: string): string {
  return `ff_${tag}_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
}

/** The raw client that writes fixtures (full access), on the shared server or another URL. */
export function createWriter(
  url: string = SHARED_URL,
  credentials: { user: string; password: string } = WRITER,
): ClickHouseClient {
  return createClient({
    url,
    username: credentials.user,
    password: credentials.password,
    database: DATABASE,
    log: { level: ClickHouseLogLevel.OFF },
  });
}

/** Runs a statement as the writer and drains its answer. */
export async function exec(writer: ClickHouseClient, query: string): Promise<void> {
  await writer.command({ query });
}

/** Rows of a SELECT run as the writer (JSONEachRow), to check what the handle did not do. */
export async function select<T>(writer: ClickHouseClient, query: string): Promise<T[]> {
  const result = await writer.query({ query, format: 'JSONEachRow' });
  return result.json<T>();
}
