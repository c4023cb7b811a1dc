import type { ConfigIssue } from '../errors.js';
import type { Environment } from '../types.js';

const PRODUCTION_LIKE = new Set(['staging', 'production']);
const MIN_SECRET_KEY_LENGTH = 32;
const MIN_METRICS_TOKEN_LENGTH = 16;
const DATABASE_TLS_REQUIRED = 'must be require or verify-full for a non-loopback database host';

/**
 * Production hardening: settings that are fine on a laptop and dangerous in a
 * deployment. `raw` has defaults applied; `env` tells what was set explicitly.
 * Runs on raw strings so that it reports even when other variables are invalid.
 */
export function harden(
  raw: Readonly<Record<string, string | undefined>>,
  env: Environment,
): ConfigIssue[] {
  if (!PRODUCTION_LIKE.has(raw.APP_ENV ?? '')) return [];
  const issues: ConfigIssue[] = [];
  const refuse = (variable: string, message: string): void => {
    issues.push({ variable, kind: 'insecure', message });
  };
  const isSet = (name: string): boolean => (env[name] ?? '').trim() !== '';

  if ((raw.SECRET_KEY ?? '').length < MIN_SECRET_KEY_LENGTH) {
    refuse(
      'SECRET_KEY',
      `must be set to at least ${MIN_SECRET_KEY_LENGTH} characters in ${raw.APP_ENV}`,
    );
  }
  // Fail closed: an empty token would serve /metrics (and readiness details) to anyone.
  if ((raw.METRICS_TOKEN ?? '').length < MIN_METRICS_TOKEN_LENGTH) {
    refuse(
      'METRICS_TOKEN',
      `must be set to at least ${MIN_METRICS_TOKEN_LENGTH} characters in ${raw.APP_ENV}: it guards /metrics and the checks of /health/ready`,
    );
  }
  if (!isSet('DATABASE_URL')) {
    refuse(
      'DATABASE_URL',
      `is required in ${raw.APP_ENV} (the embedded database is for development only)`,
    );
  } else if (
    raw.DATABASE_SSL === 'disable' &&
    !urlAsksForTls(raw.DATABASE_URL) &&
    !isLoopback(hostOf(raw.DATABASE_URL))
  ) {
    refuse('DATABASE_SSL', DATABASE_TLS_REQUIRED);
  }
  if (!isSet('KEYCLOAK_URL')) {
    refuse(
      'KEYCLOAK_URL',
      `still has its development default; set it explicitly in ${raw.APP_ENV}`,
    );
  } else {
    const host = hostOf(raw.KEYCLOAK_URL);
    if (raw.KEYCLOAK_URL?.startsWith('http:') && !isLoopback(host)) {
      refuse('KEYCLOAK_URL', 'must use https for a non-loopback host');
    }
  }
  for (const name of ['AUTH_DEV_USER_ID', 'AUTH_DEV_TENANT_ID']) {
    if (isSet(name)) refuse(name, `is a dev-bypass setting and is refused in ${raw.APP_ENV}`);
  }
  if (isSet('CLICKHOUSE_URL') && (raw.CLICKHOUSE_PASSWORD ?? '') === '') {
    refuse('CLICKHOUSE_PASSWORD', `must be set when CLICKHOUSE_URL is set in ${raw.APP_ENV}`);
  }
  return issues;
}

/**
 * The database rules alone, for loadDatabaseSettings: in staging and production,
 * DATABASE_SSL=disable is refused when DATABASE_URL or DATABASE_MIGRATION_URL
 * names a non-loopback host without asking for TLS itself. A missing URL is the
 * caller's to report (a migration tool needs only one of them).
 */
export function hardenDatabase(raw: Readonly<Record<string, string | undefined>>): ConfigIssue[] {
  if (!PRODUCTION_LIKE.has(raw.APP_ENV ?? '') || raw.DATABASE_SSL !== 'disable') return [];
  const plaintext = [raw.DATABASE_URL, raw.DATABASE_MIGRATION_URL].some(
    (url) => url !== undefined && !urlAsksForTls(url) && !isLoopback(hostOf(url)),
  );
  return plaintext
    ? [
        {
          variable: 'DATABASE_SSL',
          kind: 'insecure',
          message: DATABASE_TLS_REQUIRED,
        },
      ]
    : [];
}

function hostOf(value: string | undefined): string | undefined {
  if (value === undefined || !URL.canParse(value)) return undefined;
  const url = new URL(value);
  // node-postgres (pg-connection-string) lets a `host` query parameter override the URL's
  // host: `postgres://u:p@localhost/db?host=db.prod` connects to db.prod.
  return url.searchParams.get('host') ?? url.hostname;
}

function urlAsksForTls(value: string | undefined): boolean {
  if (value === undefined || !URL.canParse(value)) return false;
  const mode = new URL(value).searchParams.get('sslmode');
  return mode === 'require' || mode === 'verify-ca' || mode === 'verify-full';
}

/** Loopback or a Unix socket (empty host): traffic that never leaves the machine. */
function isLoopback(host: string | undefined): boolean {
  if (host === undefined) return false;
  const bare = host.replace(/^\[|\]$/g, '');
  return bare === '' || bare === 'localhost' || bare === '::1' || /^127\.\d+\.\d+\.\d+$/.test(bare);
}
