import { REDACTED } from '@flowforge/kernel';
import type { Settings } from './types.js';

// The kernel's marker, the one every FlowForge package writes: re-exported for
// code that checks a redacted value without depending on the kernel itself.
export { REDACTED };

const hideSecret = (value: string): string => (value === '' ? '' : REDACTED);

/**
 * Masks the password in a URL's userinfo and in password-like query
 * parameters. Works on multi-host URLs (redis-sentinel://a:1,b:2/m) that WHATWG
 * URL cannot parse.
 */
export function redactUrl(value: string | null): string | null {
  if (value === null) return null;
  return value
    .replace(/^([a-z][a-z0-9+.-]*:\/\/)([^/@]*?):[^/@]*@/i, `$1$2:${REDACTED}@`)
    .replace(/([?&](?:password|sslpassword|pass|token)=)[^&#]*/gi, `$1${REDACTED}`);
}

/**
 * A copy of `settings` that is safe to log: secrets replaced by `[redacted]`
 * (left empty when empty, so a missing secret stays visible), URL credentials
 * masked. `JSON.stringify(settings)` and `util.inspect(settings)` already give
 * this view.
 */
export function redactSettings(settings: Settings): Record<string, unknown> {
  return {
    ...settings,
    database: {
      ...settings.database,
      url: redactUrl(settings.database.url),
      migrationUrl: redactUrl(settings.database.migrationUrl),
    },
    clickhouse: {
      ...settings.clickhouse,
      url: redactUrl(settings.clickhouse.url),
      password: hideSecret(settings.clickhouse.password),
    },
    materialize: { ...settings.materialize, url: redactUrl(settings.materialize.url) },
    redis: {
      ...settings.redis,
      url: redactUrl(settings.redis.url),
      password: hideSecret(settings.redis.password),
    },
    observability: { metricsToken: hideSecret(settings.observability.metricsToken) },
    secretKey: hideSecret(settings.secretKey),
  };
}
