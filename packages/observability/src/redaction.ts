// Node lower-cases incoming header names, but clients (axios errors, fetch
// Headers copied into objects) keep the case they were given.
const SECRET_HEADERS = [
  'authorization',
  'proxy-authorization',
  'cookie',
  'set-cookie',
  'x-api-key',
  'Authorization',
  'Proxy-Authorization',
  'Cookie',
  'Set-Cookie',
  'X-Api-Key',
  'X-API-Key',
];
const HEADER_HOLDERS = [
  'req.headers',
  'res.headers',
  'request.headers',
  'response.headers',
  'headers',
  'err.config.headers',
  'err.request.headers',
  'err.response.headers',
];

const SECRET_KEYS = [
  'password',
  'secret',
  'token',
  'accessToken',
  'access_token',
  'refreshToken',
  'refresh_token',
  'idToken',
  'id_token',
  'apiKey',
  'api_key',
  'authorization',
  'cookie',
  // @flowforge/config's secret fields and variables (settings objects also
  // redact themselves when serialised; these cover copies of their values).
  'secretKey',
  'metricsToken',
  'SECRET_KEY',
  'CLICKHOUSE_PASSWORD',
  'METRICS_TOKEN',
];
const KEY_HOLDERS = [
  '',
  'body.',
  'req.body.',
  'req.query.',
  'query.',
  'params.',
  'data.',
  'user.',
  'config.',
  'options.',
  'credentials.',
];

const bracket = (name: string): string =>
  /^[A-Za-z_$][\w$]*$/.test(name) ? `.${name}` : `["${name}"]`;

/**
 * Exact pino redaction paths, applied by default. Exact paths, not wildcards:
 * a wildcard path costs about 4× per line; the price is that a secret nested
 * deeper than these holders (`body.user.password`) is not caught, so add your
 * own paths with the `redact` option. Settings objects from @flowforge/config
 * redact themselves and need no path. Node lower-cases header names, and
 * pino paths are case-sensitive, so the header names are lower-case.
 */
export const DEFAULT_REDACT_PATHS: readonly string[] = Object.freeze([
  ...HEADER_HOLDERS.flatMap((holder) => SECRET_HEADERS.map((name) => `${holder}${bracket(name)}`)),
  ...KEY_HOLDERS.flatMap((holder) => SECRET_KEYS.map((key) => `${holder}${key}`)),
  'cookies',
  'req.cookies',
]);
