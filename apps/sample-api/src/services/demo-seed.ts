// Demo data, so that a fresh app shows something: two tenants' dashboards and
// widgets in the app's database, and, when CLICKHOUSE_URL is set, their metric
// points in ClickHouse. Idempotent: a tenant that already has dashboards, or
// metric points, is left alone.
//
// The app only reads ClickHouse, so seeding it needs a user that may write
// (CLICKHOUSE_USER/CLICKHOUSE_PASSWORD of a writer, the local `flowforge`); with
// the app's read-only user that part fails and is reported, nothing else does.
// Materialize is read-only for FlowForge too: the live widgets stream the
// `demo_orders` view that the wire double's demo process defines.
import type { Settings } from '@flowforge/config';
import type { Database } from '@flowforge/db';
import type { Logger } from '@flowforge/observability';
import { METRIC_POINTS_TABLE } from '@flowforge/widgets';
import type { AppDB } from '../db/schema.js';

/** The dev principal's tenant (AUTH_DEV_TENANT_ID's default) and a second one, to show isolation. */
const DEV_TENANT = '00000000-0000-4000-8000-00000000000a';
const OTHER_TENANT = '00000000-0000-4000-8000-00000000000b';
const SEED_USER = '00000000-0000-4000-8000-000000000001';
/** The view the wire double's `--demo` mode defines (testing/materialize-double/src/cli.ts). */
const DEMO_VIEW = 'demo_orders';
const METRICS = ['orders', 'visits'] as const;
const DAYS = 30;

export interface SeedReport {
  tenants: Record<string, { dashboards: number; widgets: number } | 'already seeded'>;
  clickhouse: string;
}

async function seedTenant(
  database: Database<AppDB>,
  tenantId: string,
): Promise<{ dashboards: number; widgets: number } | 'already seeded'> {
  return database.withTenant(tenantId, async (trx) => {
    const existing = await trx.selectFrom('dashboards').select('id').limit(1).execute();
    if (existing.length > 0) return 'already seeded';
    const sales = await trx
      .insertInto('dashboards')
      .values({
        name: 'Sales',
        description: 'Orders and visits (demo data)',
        created_by: SEED_USER,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    const live = await trx
      .insertInto('dashboards')
      .values({ name: 'Live', description: 'Orders as they happen', created_by: SEED_USER })
      .returning('id')
      .executeTakeFirstOrThrow();
    const widgets = [
      {
        dashboard_id: sales.id,
        name: 'Orders, 30 days',
        kind: 'metric' as const,
        config: { metric: 'orders', days: 30 },
      },
      {
        dashboard_id: sales.id,
        name: 'Visits, 7 days',
        kind: 'metric' as const,
        config: { metric: 'visits', days: 7 },
      },
      {
        dashboard_id: live.id,
        name: 'Live orders',
        kind: 'live' as const,
        config: { view: DEMO_VIEW },
      },
    ];
    await trx
      .insertInto('widgets')
      .values(widgets.map((widget) => ({ ...widget, config: JSON.stringify(widget.config) })))
      .execute();
    return { dashboards: 2, widgets: widgets.length };
  });
}

/** ClickHouse's HTTP interface, as a writer (the app's own client is read-only by design). */
async function clickhouse(settings: Settings, query: string, body?: string): Promise<string> {
  const { url, database } = settings.clickhouse;
  const target = new URL(url!);
  // Credentials in the URL win, as in @flowforge/clickhouse; they go in the header
  // only (fetch refuses a URL with credentials, and would quote it in its error).
  const user = target.username ? decodeURIComponent(target.username) : settings.clickhouse.user;
  const password = target.username
    ? decodeURIComponent(target.password)
    : settings.clickhouse.password;
  target.username = '';
  target.password = '';
  target.searchParams.set('query', query);
  target.searchParams.set('database', database);
  const response = await fetch(target, {
    method: 'POST',
    headers: { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` },
    ...(body === undefined ? {} : { body }),
    signal: AbortSignal.timeout(settings.clickhouse.requestTimeoutMs),
  });
  const text = await response.text();
  if (!response.ok)
    throw new Error(`ClickHouse answered ${response.status}: ${text.slice(0, 200)}`);
  return text;
}

async function seedClickHouse(
  settings: Settings,
  tenants: readonly string[],
  logger: Logger,
): Promise<string> {
  if (settings.clickhouse.url === null) return 'skipped: CLICKHOUSE_URL is not set';
  try {
    await clickhouse(
      settings,
      `CREATE TABLE IF NOT EXISTS ${METRIC_POINTS_TABLE}
        (tenant_id UUID, metric String, ts DateTime, value Float64)
        ENGINE = MergeTree ORDER BY (tenant_id, metric, ts)`,
    );
    const seeded = new Set(
      (
        await clickhouse(
          settings,
          `SELECT DISTINCT toString(tenant_id) FROM ${METRIC_POINTS_TABLE} FORMAT TabSeparated`,
        )
      )
        .split('\n')
        .filter(Boolean),
    );
    const rows: string[] = [];
    const today = Date.UTC(
      new Date().getUTCFullYear(),
      new Date().getUTCMonth(),
      new Date().getUTCDate(),
    );
    for (const [index, tenant] of tenants.entries()) {
      if (seeded.has(tenant)) continue;
      for (let day = 0; day < DAYS; day += 1) {
        const ts = new Date(today - day * 86_400_000 + 12 * 3_600_000)
          .toISOString()
          .slice(0, 19)
          .replace('T', ' ');
        for (const [m, metric] of METRICS.entries()) {
          // A gentle weekly wave, different per tenant and metric: recognisable on a chart.
          const value = Math.round(
            (100 + 40 * Math.sin((day + index * 3 + m) / 1.2)) * (m + 1) * (index + 1),
          );
          rows.push(JSON.stringify({ tenant_id: tenant, metric, ts, value }));
        }
      }
    }
    if (rows.length === 0) return 'already seeded';
    await clickhouse(
      settings,
      `INSERT INTO ${METRIC_POINTS_TABLE} FORMAT JSONEachRow`,
      rows.join('\n'),
    );
    return `${rows.length} metric points`;
  } catch (error) {
    logger.warn({ err: error }, 'ClickHouse seed failed (it needs a user that may write)');
    return 'failed (see the warning above)';
  }
}

/** Seeds the dev principal's tenant and a second one; never throws for ClickHouse (it reports). */
export async function seedDemo(
  database: Database<AppDB>,
  settings: Settings,
  logger: Logger,
): Promise<SeedReport> {
  const tenants = [settings.auth.devBypass?.tenantId ?? DEV_TENANT, OTHER_TENANT];
  const report: SeedReport = { tenants: {}, clickhouse: '' };
  for (const tenant of tenants) report.tenants[tenant] = await seedTenant(database, tenant);
  report.clickhouse = await seedClickHouse(settings, tenants, logger);
  logger.info(report, 'demo data seeded');
  return report;
}
