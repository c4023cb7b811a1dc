import { randomBytes, randomUUID } from 'node:crypto';
import { createApiKey, revokeApiKey } from '@flowforge/auth';
import type { Database } from '@flowforge/db';
import type { WidgetKind, WidgetsDB } from '@flowforge/widgets';
import { CLICKHOUSE_READER, createMetricStore, type MetricPointRow } from './clickhouse.js';
import { createEmbedDatabase } from './postgres.js';

const REDIS_URL = 'redis://127.0.0.1:6379';

/** The widgets the fixture seeds (ids in the shared database). */
export interface EmbedWidgets {
  /** Tenant A, metric `orders` over 7 days: in key A's scope. */
  readonly orders: string;
  /** Tenant A, metric `visits` over 7 days: in key A's scope. */
  readonly visits: string;
  /** Tenant A, metric `orders`: in no key's scope. */
  readonly outOfScope: string;
  /** Tenant A, a `live` widget (it streams; it has no data to read): in key A's scope. */
  readonly live: string;
  /** Tenant A: in key A's scope, deleted after the key was made. */
  readonly deleted: string;
  /** Tenant B, metric `orders` over 1 day: in key B's scope, and in key A's (see `keys.tenantA`). */
  readonly ofTenantB: string;
}

/** The API keys the fixture creates (plaintext). */
export interface EmbedKeys {
  /**
   * Tenant A's key for `orders`, `visits`, `live`, `deleted`, and tenant B's
   * `ofTenantB`: `createApiKey` does not look the widgets up (the apps' key
   * routes do), so only row-level security stands between it and B's widget.
   */
  readonly tenantA: string;
  /** Tenant B's key for `ofTenantB`. */
  readonly tenantB: string;
  /** Tenant A's key for `orders`, revoked. */
  readonly revoked: string;
}

/** What the contract runs against; see {@link createEmbedFixture}. */
export interface EmbedFixture {
  /**
   * The environment of an app under test, as a deployment sets it: APP_ENV=test,
   * DATABASE_URL (the app's role), ClickHouse as the read-only user, REDIS_URL,
   * METRICS_TOKEN.
   */
  readonly env: Readonly<Record<string, string>>;
  /** METRICS_TOKEN of `env`. */
  readonly metricsToken: string;
  /** ClickHouse's today() (YYYY-MM-DD). */
  readonly today: string;
  readonly tenantA: string;
  readonly tenantB: string;
  readonly widgets: EmbedWidgets;
  readonly keys: EmbedKeys;
  /** How many PostgreSQL connections named `applicationName` (APP_NAME) are open now. */
  connectionsOf(applicationName: string): Promise<number>;
  /** Drops both databases. */
  drop(): Promise<void>;
}

/**
 * The rows of `metric_points`: tenant A's `orders` are 5 today and 7 two days
 * ago within 7 days (a 30-day-old row outside them), its `visits` 50 yesterday;
 * tenant B's `orders` 99 today and 98 yesterday.
 */
function metricRows(tenantA: string, tenantB: string): MetricPointRow[] {
  return [
    { tenantId: tenantA, metric: 'orders', daysAgo: 0, value: 2 },
    { tenantId: tenantA, metric: 'orders', daysAgo: 0, value: 3 },
    { tenantId: tenantA, metric: 'orders', daysAgo: 2, value: 7 },
    { tenantId: tenantA, metric: 'orders', daysAgo: 30, value: 1_000 },
    { tenantId: tenantA, metric: 'visits', daysAgo: 1, value: 50 },
    { tenantId: tenantB, metric: 'orders', daysAgo: 0, value: 99 },
    { tenantId: tenantB, metric: 'orders', daysAgo: 1, value: 98 },
  ];
}

/** A widget as the fixture seeds it. */
interface WidgetSeed {
  readonly kind: WidgetKind;
  readonly config: Record<string, unknown>;
}

const metric = (name: string, days?: number): WidgetSeed => ({
  kind: 'metric',
  config: days === undefined ? { metric: name } : { metric: name, days },
});

/** A dashboard of `tenantId` holding `widgets`; resolves to their ids, by the same names. */
async function seedDashboard<Name extends string>(
  database: Database<WidgetsDB>,
  tenantId: string,
  createdBy: string,
  widgets: Readonly<Record<Name, WidgetSeed>>,
): Promise<Record<Name, string>> {
  return database.withTenant(tenantId, async (trx) => {
    const dashboard = await trx
      .insertInto('dashboards')
      .values({ name: 'Embedded', description: null, created_by: createdBy })
      .returning('id')
      .executeTakeFirstOrThrow();
    const ids: Partial<Record<Name, string>> = {};
    for (const [name, widget] of Object.entries(widgets) as [Name, WidgetSeed][]) {
      const row = await trx
        .insertInto('widgets')
        .values({
          dashboard_id: dashboard.id,
          name,
          kind: widget.kind,
          config: JSON.stringify(widget.config),
        })
        .returning('id')
        .executeTakeFirstOrThrow();
      ids[name] = row.id;
    }
    return ids as Record<Name, string>;
  });
}

/**
 * Seeds what the embed contract reads, through the packages' public API only:
 * a fresh PostgreSQL database migrated with @flowforge/auth's and
 * @flowforge/widgets' migrations, dashboards and widgets in two tenants, API
 * keys made with `createApiKey`, and a ClickHouse database whose
 * `metric_points` a writer filled while the apps read as `flowforge_reader`.
 */
export async function createEmbedFixture(): Promise<EmbedFixture> {
  const tenantA = randomUUID();
  const tenantB = randomUUID();
  const user = randomUUID();
  const [postgres, metrics] = await Promise.all([
    createEmbedDatabase('embed'),
    createMetricStore('embed'),
  ]);
  try {
    await metrics.insert(metricRows(tenantA, tenantB));
    const { database } = postgres;
    const a = await seedDashboard(database, tenantA, user, {
      orders: metric('orders', 7),
      visits: metric('visits', 7),
      outOfScope: metric('orders'),
      live: { kind: 'live', config: { view: 'orders_live' } },
      deleted: metric('orders'),
    });
    const b = await seedDashboard(database, tenantB, user, { orders: metric('orders', 1) });
    const widgets: EmbedWidgets = { ...a, ofTenantB: b.orders };
    const key = (tenantId: string, widgetIds: string[]) =>
      createApiKey(database, tenantId, { name: 'embed contract', widgetIds, createdBy: user });
    const keyA = await key(tenantA, [a.orders, a.visits, a.live, a.deleted, b.orders]);
    const keyB = await key(tenantB, [b.orders]);
    const revoked = await key(tenantA, [a.orders]);
    await revokeApiKey(database, tenantA, revoked.id);
    await database.withTenant(tenantA, (trx) =>
      trx.deleteFrom('widgets').where('id', '=', a.deleted).execute(),
    );
    const metricsToken = randomBytes(16).toString('hex');
    return {
      env: {
        APP_ENV: 'test',
        DATABASE_URL: postgres.appUrl,
        DATABASE_POOL_SIZE: '4',
        CLICKHOUSE_URL: CLICKHOUSE_READER.url,
        CLICKHOUSE_USER: CLICKHOUSE_READER.user,
        CLICKHOUSE_PASSWORD: CLICKHOUSE_READER.password,
        CLICKHOUSE_DATABASE: metrics.database,
        REDIS_URL,
        METRICS_TOKEN: metricsToken,
        // Wrong keys are counted per client address in the shared Redis, and every test here
        // calls from 127.0.0.1: the throttle (tested in @flowforge/auth) would answer 429.
        AUTH_API_KEY_MAX_FAILURES: '100000',
      },
      metricsToken,
      today: metrics.today,
      tenantA,
      tenantB,
      widgets,
      keys: { tenantA: keyA.key, tenantB: keyB.key, revoked: revoked.key },
      connectionsOf: (applicationName) => postgres.connectionsOf(applicationName),
      async drop() {
        await Promise.allSettled([postgres.drop(), metrics.drop()]);
      },
    };
  } catch (error) {
    await Promise.allSettled([postgres.drop(), metrics.drop()]);
    throw error;
  }
}
