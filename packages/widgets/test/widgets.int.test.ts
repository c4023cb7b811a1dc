// The data model on real PostgreSQL: widgetMigrations composed after authMigrations
// (fresh, and a database the sample app migrated when these were its own
// migrations), and findWidget under row-level security.
// Decision records: docs/decisions/007-composable-migrations.md, 011-widgets-package.md.
import { randomUUID } from 'node:crypto';
import { authMigrations, isAuthError, type Principal } from '@flowforge/auth';
import {
  createDatabase,
  migrateDown,
  migrateToLatest,
  migrationHistories,
  tenantIsolationProblems,
  type Database,
  type MigrateOptions,
} from '@flowforge/db';
import { sql, type Kysely } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import {
  MAX_LIVE_WIDGETS,
  findWidget,
  requireLiveViews,
  requireWidget,
} from '../src/find-widget.js';
import { isWidgetError } from '../src/errors.js';
import { widgetMigrations } from '../src/migrations.js';
import type { WidgetsDB } from '../src/schema.js';
import { APP_LOGIN, OWNER, createTestDatabase, urlFor } from './support/postgres.js';

const MIGRATION = '2026-11-28-0001-dashboards-and-widgets';
const LIST_INDEXES = '2026-12-07-0001-list-order-indexes';
const CONFIG_SIZE = '2026-12-07-0002-config-size-check';
const TENANT_A = randomUUID();
const TENANT_B = randomUUID();
const USER = randomUUID();
/** How an app composes the data model today. */
const COMPOSED: MigrateOptions = { packages: [authMigrations, widgetMigrations], migrations: {} };

const opened: Database<unknown>[] = [];
const dropped: (() => Promise<void>)[] = [];

afterAll(async () => {
  await Promise.allSettled(opened.map((handle) => handle.close()));
  for (const drop of dropped) await drop();
});

/** A fresh database: the owner's handle (migrations) and the app login's (data). */
async function freshDatabase(): Promise<{ owner: Kysely<unknown>; app: Database<WidgetsDB> }> {
  const { name, drop } = await createTestDatabase('widgets');
  dropped.push(drop);
  const owner = createDatabase<unknown>({ url: urlFor(OWNER, name), poolSize: 1 });
  const app = createDatabase<WidgetsDB>({ url: urlFor(APP_LOGIN, name), poolSize: 2 });
  opened.push(owner, app as Database<unknown>);
  return { owner: owner.db, app };
}

/** Source → the names its history table records. */
async function histories(owner: Kysely<unknown>): Promise<Record<string, string[]>> {
  return Object.fromEntries(
    (await migrationHistories(owner)).map((history) => [
      history.source,
      history.applied.map((applied) => applied.name),
    ]),
  );
}

/** Table → the column lists of its indexes (`(tenant_id, created_at, id)`), sorted. */
async function indexesOf(owner: Kysely<unknown>): Promise<Record<string, string[]>> {
  const { rows } = await sql<{ table: string; definition: string }>`
    select tablename as table, indexdef as definition
    from pg_indexes where tablename in ('dashboards', 'widgets')`.execute(owner);
  const byTable: Record<string, string[]> = {};
  for (const row of rows) (byTable[row.table] ??= []).push(/\([^)]*\)$/.exec(row.definition)![0]);
  for (const columns of Object.values(byTable)) columns.sort();
  return byTable;
}

/** A dashboard with one widget of each kind, in `tenantId`; their ids. */
async function seed(app: Database<WidgetsDB>, tenantId: string) {
  return app.withTenant(tenantId, async (trx) => {
    const dashboard = await trx
      .insertInto('dashboards')
      .values({ name: 'Sales', description: null, created_by: USER })
      .returning('id')
      .executeTakeFirstOrThrow();
    const [metric, live] = await trx
      .insertInto('widgets')
      .values([
        {
          dashboard_id: dashboard.id,
          name: 'Orders',
          kind: 'metric',
          config: JSON.stringify({ metric: 'orders', days: 30 }),
        },
        {
          dashboard_id: dashboard.id,
          name: 'Live',
          kind: 'live',
          config: JSON.stringify({ view: 'demo_orders' }),
        },
      ])
      .returning('id')
      .execute();
    return { dashboard: dashboard.id, metric: metric!.id, live: live!.id };
  });
}

describe('widgetMigrations', () => {
  it('creates tenant-isolated dashboards and widgets after auth, tracked in flowforge_widgets_migration', async () => {
    const { owner, app } = await freshDatabase();
    const run = await migrateToLatest(owner, COMPOSED);
    expect(run.applied).toEqual([
      '0000-flowforge-db-0001-tenancy',
      '0001-flowforge-auth-0001-api-keys',
      MIGRATION,
      LIST_INDEXES,
      CONFIG_SIZE,
    ]);
    expect(await histories(owner)).toMatchObject({
      flowforge_widgets: [MIGRATION, LIST_INDEXES, CONFIG_SIZE],
    });
    expect(await indexesOf(owner)).toEqual({
      dashboards: ['(id)', '(tenant_id, created_at, id)', '(tenant_id, id)'],
      widgets: ['(id)', '(tenant_id, dashboard_id, created_at, id)'],
    });
    expect(await tenantIsolationProblems(owner)).toEqual([]);
    const ids = await seed(app, TENANT_A);
    // The foreign key includes tenant_id: another tenant cannot attach a widget to this dashboard.
    await expect(
      app.withTenant(TENANT_B, (trx) =>
        trx
          .insertInto('widgets')
          .values({ dashboard_id: ids.dashboard, name: 'x', kind: 'metric', config: '{}' })
          .execute(),
      ),
    ).rejects.toMatchObject({ code: 'FOREIGN_KEY_VIOLATION' });
    // Every writer, not only the app's checkWidgetConfig, is held to the size cap.
    const huge = JSON.stringify({ metric: 'orders', pad: 'x'.repeat(40_000) });
    await expect(
      app.withTenant(TENANT_A, (trx) =>
        trx
          .insertInto('widgets')
          .values({ dashboard_id: ids.dashboard, name: 'huge', kind: 'metric', config: huge })
          .execute(),
      ),
    ).rejects.toMatchObject({ code: 'CHECK_VIOLATION' });
    expect((await migrateToLatest(owner, COMPOSED)).applied).toEqual([]);
  });

  it('upgrades a database the sample app migrated as its own, in place: nothing runs twice, no data is touched', async () => {
    const { owner, app } = await freshDatabase();
    // What the sample app's dist/migrations.js was before the package: the same
    // migration, as the app's own (history in kysely_migration).
    await migrateToLatest(owner, {
      packages: [authMigrations],
      migrations: { [MIGRATION]: widgetMigrations.migrations[MIGRATION]! },
    });
    expect(await histories(owner)).toMatchObject({ app: [MIGRATION] });
    const ids = await seed(app, TENANT_A);

    const run = await migrateToLatest(owner, COMPOSED);
    // The released migration is moved, not run again; only the later one runs.
    expect(run.applied).toEqual([LIST_INDEXES, CONFIG_SIZE]);
    const after = await histories(owner);
    expect(after).toMatchObject({ flowforge_widgets: [MIGRATION, LIST_INDEXES, CONFIG_SIZE] });
    expect(after.app ?? []).toEqual([]);
    expect(await findWidget(app, TENANT_A, ids.metric)).toEqual({
      id: ids.metric,
      kind: 'metric',
      config: { metric: 'orders', days: 30 },
    });
  });

  it('reverts before auth (the last package first): the list indexes, then both tables', async () => {
    const { owner } = await freshDatabase();
    await migrateToLatest(owner, COMPOSED);
    expect((await migrateDown(owner, COMPOSED)).applied).toEqual([CONFIG_SIZE]);
    expect((await migrateDown(owner, COMPOSED)).applied).toEqual([LIST_INDEXES]);
    expect((await indexesOf(owner)).widgets).toEqual(['(id)', '(tenant_id, dashboard_id)']);
    expect((await migrateDown(owner, COMPOSED)).applied).toEqual([MIGRATION]);
    const { rows } = await sql<{
      dashboards: string | null;
      widgets: string | null;
      keys: string | null;
    }>`
      select to_regclass('dashboards')::text as dashboards, to_regclass('widgets')::text as widgets,
             to_regclass('api_keys')::text as keys`.execute(owner);
    expect(rows).toEqual([{ dashboards: null, widgets: null, keys: 'api_keys' }]);
  });
});

describe('findWidget', () => {
  it("finds a tenant's widget (id, kind, config), and neither another tenant's nor a missing one", async () => {
    const { owner, app } = await freshDatabase();
    await migrateToLatest(owner, COMPOSED);
    const a = await seed(app, TENANT_A);
    const b = await seed(app, TENANT_B);
    expect(await findWidget(app, TENANT_A, a.live)).toEqual({
      id: a.live,
      kind: 'live',
      config: { view: 'demo_orders' },
    });
    expect(await findWidget(app, TENANT_A, b.live)).toBeUndefined();
    expect(await findWidget(app, TENANT_B, a.metric)).toBeUndefined();
    expect(await findWidget(app, TENANT_A, randomUUID())).toBeUndefined();
  });

  it('refuses a tenant id that is not a UUID', async () => {
    const { owner, app } = await freshDatabase();
    await migrateToLatest(owner, COMPOSED);
    await expect(findWidget(app, 'tenant-a', randomUUID())).rejects.toMatchObject({
      code: 'TENANT_INVALID',
    });
  });
});

describe('requireWidget', () => {
  const user = (tenantId: string): Principal => ({
    userId: randomUUID(),
    tenantId,
    claims: {},
    roles: ['viewer'],
    method: 'jwt',
  });

  it('answers every refusal with a client-safe error: 400 not a UUID, 403 out of scope, 404 not found', async () => {
    const { owner, app } = await freshDatabase();
    await migrateToLatest(owner, COMPOSED);
    const a = await seed(app, TENANT_A);
    const b = await seed(app, TENANT_B);
    expect(await requireWidget(app, user(TENANT_A), a.metric.toUpperCase())).toMatchObject({
      id: a.metric,
      kind: 'metric',
    });
    // Ajv's uuid format takes this form too; the lookup does not.
    await expect(requireWidget(app, user(TENANT_A), `urn:uuid:${a.metric}`)).rejects.toSatisfy(
      (error: unknown) => isWidgetError(error, 'WIDGET_ID_INVALID') && error.status === 400,
    );
    // Another tenant's widget is answered like a missing one.
    for (const id of [b.metric, randomUUID()]) {
      await expect(requireWidget(app, user(TENANT_A), id)).rejects.toSatisfy(
        (error: unknown) =>
          isWidgetError(error, 'WIDGET_NOT_FOUND') &&
          error.status === 404 &&
          error.reason === 'No widget with this id.',
      );
    }
    const key: Principal = { ...user(TENANT_A), method: 'api_key', widgetIds: [a.live] };
    await expect(requireWidget(app, key, a.metric)).rejects.toSatisfy((error: unknown) =>
      isAuthError(error, 'INSUFFICIENT_SCOPE'),
    );
    expect((await requireWidget(app, key, a.live)).id).toBe(a.live);
  });
});

describe('requireLiveViews', () => {
  const user = (tenantId: string): Principal => ({
    userId: randomUUID(),
    tenantId,
    claims: {},
    roles: ['viewer'],
    method: 'jwt',
  });
  const refusedWith =
    (code: string, status: number) =>
    (error: unknown): boolean =>
      isWidgetError(error) && error.code === code && error.status === status;

  it('gives each live widget its view in the order asked, from one query, and refuses like requireWidget', async () => {
    const { owner, app } = await freshDatabase();
    await migrateToLatest(owner, COMPOSED);
    const a = await seed(app, TENANT_A);
    const second = await seed(app, TENANT_A);
    const b = await seed(app, TENANT_B);
    expect(
      await requireLiveViews(app, user(TENANT_A), [second.live, a.live.toUpperCase()]),
    ).toEqual([
      { id: second.live, view: 'demo_orders' },
      { id: a.live, view: 'demo_orders' },
    ]);
    // Another tenant's widget and a missing one: 404 alike.
    for (const id of [b.live, randomUUID()]) {
      await expect(requireLiveViews(app, user(TENANT_A), [a.live, id])).rejects.toSatisfy(
        refusedWith('WIDGET_NOT_FOUND', 404),
      );
    }
    await expect(requireLiveViews(app, user(TENANT_A), [a.live, a.metric])).rejects.toSatisfy(
      refusedWith('WIDGET_NOT_QUERYABLE', 409),
    );
    for (const ids of [
      [],
      [a.live, a.live.toUpperCase()],
      [`urn:uuid:${a.live}`],
      Array.from({ length: MAX_LIVE_WIDGETS + 1 }, () => randomUUID()),
    ]) {
      await expect(requireLiveViews(app, user(TENANT_A), ids)).rejects.toSatisfy(
        refusedWith('WIDGET_ID_INVALID', 400),
      );
    }
    const key: Principal = { ...user(TENANT_A), method: 'api_key', widgetIds: [a.live] };
    await expect(requireLiveViews(app, key, [a.live, second.live])).rejects.toSatisfy(
      (error: unknown) => isAuthError(error, 'INSUFFICIENT_SCOPE'),
    );
    expect(await requireLiveViews(app, key, [a.live])).toEqual([
      { id: a.live, view: 'demo_orders' },
    ]);
  });
});
