/**
 * chdb 3.4 (ClickHouse 26.7 in-process) behind @clickhouse/client, and how the
 * tests load data into it without going through the read-only handle.
 *
 * Session semantics, measured here (see FACTS.md):
 * - `createChdbConnection({ path: ':memory:' })` opens a chdb Session on a temp
 *   dir that every `:memory:` connection of the process shares (one engine per
 *   process): rows one connection writes, another reads.
 * - Each connection is its own session. The driver's per-query settings become
 *   `SET …` statements in that session and stay there: after the handle's first
 *   query its session has readonly=2 for good (also for later queries that send
 *   no settings). Another connection's session is not affected.
 * - `database` is ignored: qualify every table (`default.events`).
 *
 * So the fixture writer is a connection of its own (`writer`), used only for
 * CREATE/INSERT/DROP, and the handle under test gets another (`client`). The
 * writer can still write after the handle ran (sessions are separate), which
 * the tests check. Vitest runs every test file in its own process (pool:
 * forks), so every file has its own engine and temp dir.
 */
import { createClient, type ClickHouseClient } from '@clickhouse/client';
import { createChdbConnection } from 'chdb/connection';

export interface Chdb {
  /** Fixture writer: its own session, full access. */
  readonly writer: ClickHouseClient;
  /** For the handle under test (`createClickHouse({ client })`). */
  readonly client: ClickHouseClient;
  /** Closes both connections (the temp dir goes with the last one). */
  close(): Promise<void>;
}

/**
 * chdb types its Connection with its own copy of @clickhouse/client-common
 * (1.23.0), the driver with the one it bundles (1.23.1): the same interface,
 * two declarations, which exactOptionalPropertyTypes will not equate.
 */
type DriverConnection = NonNullable<NonNullable<Parameters<typeof createClient>[0]>['connection']>;

/** One more connection (its own session) on the process's engine; the caller closes it. */
export function chdbClient(): ClickHouseClient {
  const connection = createChdbConnection({ path: ':memory:' }) as unknown as DriverConnection;
  return createClient({ connection });
}

export function openChdb(): Chdb {
  const writer = chdbClient();
  const client = chdbClient();
  return {
    writer,
    client,
    async close() {
      await client.close();
      await writer.close();
    },
  };
}
