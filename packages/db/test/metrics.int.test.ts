/**
 * The Prometheus metrics a handle reports on a registry from @flowforge/observability:
 * the query duration histogram by operation, the error counter by SQLSTATE class,
 * and the pool gauges by handle name, rendered as text and read back from it.
 */
import { spawnSync } from 'node:child_process';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMetrics } from '@flowforge/observability';
import { createDatabase, DatabaseError, type Database } from '../src/index.js';
import {
  createTestDatabase,
  openMigrated,
  TENANT_A,
  TENANT_B,
  type TestDatabase,
  type TestDB,
} from './support/postgres.js';
import { rejectionOf } from './support/assert.js';

const metrics = createMetrics();
let testDb: TestDatabase;
let main: Database<TestDB>;
const handles: Database<TestDB>[] = [];

beforeAll(async () => {
  testDb = await createTestDatabase('metrics');
  main = await openMigrated(testDb, { metrics, name: 'main' });
  handles.push(main);
});

afterAll(async () => {
  for (const handle of handles) await handle.close();
  await testDb?.drop();
});

interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** Every sample line of Prometheus text (label values unescaped). */
function parseSamples(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!match) continue;
    const labels: Record<string, string> = {};
    for (const label of (match[2] ?? '').matchAll(
      /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g,
    )) {
      labels[label[1] ?? ''] = (label[2] ?? '').replace(/\\(.)/g, (_, char: string) =>
        char === 'n' ? '\n' : char,
      );
    }
    samples.push({ name: match[1] ?? '', labels, value: Number(match[3]) });
  }
  return samples;
}

function valueOf(
  samples: readonly Sample[],
  name: string,
  labels: Record<string, string>,
): number | undefined {
  const wanted = Object.entries(labels);
  return samples.find(
    (sample) =>
      sample.name === name &&
      Object.keys(sample.labels).length === wanted.length &&
      wanted.every(([key, value]) => sample.labels[key] === value),
  )?.value;
}

function labelValues(samples: readonly Sample[], name: string, label: string): string[] {
  return [
    ...new Set(
      samples.filter((sample) => sample.name === name).map((sample) => sample.labels[label] ?? ''),
    ),
  ].sort();
}

const POOL_GAUGES = [
  'flowforge_db_pool_connections',
  'flowforge_db_pool_idle_connections',
  'flowforge_db_pool_waiting_requests',
] as const;

/** scripts/services installs Debian's prometheus package for it. */
const PROMTOOL = '/usr/bin/promtool';
const hasPromtool = spawnSync(PROMTOOL, ['--version'], { stdio: 'ignore' }).error === undefined;

describe('db metrics on a shared registry', () => {
  it('count queries by operation, a unique violation under class 23, and report sane pool gauges', async () => {
    // 3 inserts (the last one fails), 4 selects (2 built, 1 raw, 1 health check).
    await main.withTenant(TENANT_A, (trx) =>
      trx.insertInto('notes').values({ title: 'm1' }).execute(),
    );
    await main.withTenant(TENANT_A, (trx) =>
      trx.insertInto('notes').values({ title: 'm2', body: 'select * from "notes"' }).execute(),
    );
    const a = await main.withTenant(TENANT_A, (trx) =>
      trx.selectFrom('notes').select('title').execute(),
    );
    expect(a.map((row) => row.title).sort()).toEqual(['m1', 'm2']);
    const b = await main.withTenant(TENANT_B, (trx) =>
      trx.selectFrom('notes').select('title').where('title', '=', 'm1').execute(),
    );
    expect(b).toEqual([]);
    const { rows } = await main.withTenant(TENANT_A, (trx) =>
      sql<{ n: string }>`select count(*) as n from "notes" where title <> 'x'`.execute(trx),
    );
    expect(Number(rows[0]?.n)).toBe(2);
    await main.health();

    const duplicate = await rejectionOf(
      main.withTenant(TENANT_A, (trx) => trx.insertInto('notes').values({ title: 'm1' }).execute()),
    );
    expect(duplicate).toBeInstanceOf(DatabaseError);
    expect(duplicate).toMatchObject({
      code: 'UNIQUE_VIOLATION',
      sqlstate: '23505',
      constraint: 'notes_tenant_title_key',
    });

    const samples = parseSamples(await metrics.render());
    const histogram = 'flowforge_db_query_duration_seconds';
    // Kysely logs the queries; the driver reports the statements it sends itself.
    // Six withTenant calls: five committed, the duplicate rolled back.
    expect(labelValues(samples, `${histogram}_count`, 'operation')).toEqual([
      'begin',
      'commit',
      'insert',
      'rollback',
      'select',
    ]);
    expect(valueOf(samples, `${histogram}_count`, { operation: 'begin' })).toBe(6);
    expect(valueOf(samples, `${histogram}_count`, { operation: 'commit' })).toBe(5);
    expect(valueOf(samples, `${histogram}_count`, { operation: 'rollback' })).toBe(1);
    expect(valueOf(samples, `${histogram}_count`, { operation: 'select' })).toBe(4);
    // A failed statement is observed too (its duration up to the error).
    expect(valueOf(samples, `${histogram}_count`, { operation: 'insert' })).toBe(3);
    expect(valueOf(samples, `${histogram}_sum`, { operation: 'select' })).toBeGreaterThan(0);
    expect(valueOf(samples, `${histogram}_bucket`, { operation: 'select', le: '+Inf' })).toBe(4);

    expect(labelValues(samples, 'flowforge_db_errors_total', 'sqlstate_class')).toEqual(['23']);
    expect(valueOf(samples, 'flowforge_db_errors_total', { sqlstate_class: '23' })).toBe(1);

    const connections = valueOf(samples, 'flowforge_db_pool_connections', { database: 'main' });
    const idle = valueOf(samples, 'flowforge_db_pool_idle_connections', { database: 'main' });
    const waiting = valueOf(samples, 'flowforge_db_pool_waiting_requests', { database: 'main' });
    expect(connections).toBeGreaterThanOrEqual(1);
    expect(connections).toBeLessThanOrEqual(4); // openMigrated's poolSize
    expect(idle).toBeDefined();
    expect(idle).toBeLessThanOrEqual(connections!);
    expect(idle).toBe(connections); // nothing is checked out between requests
    expect(waiting).toBe(0);
  });

  it('never put SQL text in a label value', async () => {
    await main.withTenant(TENANT_A, (trx) =>
      sql`select title from "notes" where body = ${'from "notes"'}`.execute(trx),
    );
    await main.withTenant(TENANT_A, (trx) =>
      trx.updateTable('notes').set({ body: 'updated' }).where('title', '=', 'm2').execute(),
    );
    await main.withTenant(TENANT_A, (trx) =>
      trx.deleteFrom('notes').where('title', '=', 'nothing').execute(),
    );
    await rejectionOf(main.withTenant(TENANT_A, (trx) => sql`selec 1 from "notes"`.execute(trx)));

    const samples = parseSamples(await metrics.render()).filter((sample) =>
      sample.name.startsWith('flowforge_db_'),
    );
    expect(samples.length).toBeGreaterThan(0);
    for (const sample of samples) {
      for (const [label, value] of Object.entries(sample.labels)) {
        if (label === 'le') continue;
        expect(value, `${sample.name}{${label}}`).not.toMatch(/from|notes|"|\s/i);
        expect(value, `${sample.name}{${label}}`).toMatch(/^[a-z0-9_]{1,32}$/);
      }
    }
    // The bounded vocabularies: a raw statement that starts with an unknown word is "other".
    expect(labelValues(samples, 'flowforge_db_query_duration_seconds_count', 'operation')).toEqual([
      'begin',
      'commit',
      'delete',
      'insert',
      'other',
      'rollback',
      'select',
      'update',
    ]);
    // 42601 syntax_error joins the earlier 23505.
    expect(labelValues(samples, 'flowforge_db_errors_total', 'sqlstate_class')).toEqual([
      '23',
      '42',
    ]);
  });

  it('report the pools of two named handles side by side, and drop a handle from the gauges when it closes', async () => {
    const audit = createDatabase<TestDB>({
      url: testDb.appUrl,
      poolSize: 2,
      metrics,
      name: 'audit',
    });
    handles.push(audit);

    // Nothing connects until the first query.
    let samples = parseSamples(await metrics.render());
    expect(valueOf(samples, 'flowforge_db_pool_connections', { database: 'audit' })).toBe(0);

    await audit.withTenant(TENANT_B, (trx) => trx.selectFrom('notes').selectAll().execute());
    await main.withTenant(TENANT_A, (trx) => trx.selectFrom('notes').selectAll().execute());
    samples = parseSamples(await metrics.render());
    for (const gauge of POOL_GAUGES) {
      expect(labelValues(samples, gauge, 'database'), gauge).toEqual(['audit', 'main']);
    }
    expect(valueOf(samples, 'flowforge_db_pool_connections', { database: 'audit' })).toBe(1);
    expect(
      valueOf(samples, 'flowforge_db_pool_connections', { database: 'main' }),
    ).toBeGreaterThanOrEqual(1);

    await audit.close();
    samples = parseSamples(await metrics.render());
    for (const gauge of POOL_GAUGES) {
      expect(labelValues(samples, gauge, 'database'), gauge).toEqual(['main']);
    }
    // The other handle keeps reporting, and working.
    await main.withTenant(TENANT_A, (trx) => trx.selectFrom('notes').selectAll().execute());
    samples = parseSamples(await metrics.render());
    expect(
      valueOf(samples, 'flowforge_db_pool_connections', { database: 'main' }),
    ).toBeGreaterThanOrEqual(1);
  });

  // Skipped only where promtool is missing (scripts/services installs it; its status line says
  // `prometheus n/a promtool missing` when the package could not be installed).
  it.skipIf(!hasPromtool)('render text that `promtool check metrics` accepts', async () => {
    await main.withTenant(TENANT_A, (trx) => trx.selectFrom('notes').selectAll().execute());
    const text = await metrics.render();
    expect(text).toContain('flowforge_db_query_duration_seconds_bucket');
    const result = spawnSync(PROMTOOL, ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(result.error).toBeUndefined();
    expect({ status: result.status, output: `${result.stdout}${result.stderr}` }).toEqual({
      status: 0,
      output: '',
    });
  });
});
