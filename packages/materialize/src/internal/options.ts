import { OptionChecks, describeValue } from '@flowforge/kernel';
import { MaterializeError } from '../errors.js';
import type { MaterializeOptions, ReconnectOptions } from '../options.js';

/** Longest timer Node accepts (a longer one fires after 1 ms). */
const MAX_TIMEOUT_MS = 2_147_483_647;
/** Materialize refuses a FETCH timeout over one day ("timeout out of range"). */
const MAX_FETCH_TIMEOUT_MS = 86_400_000;

/** The options, checked, with defaults applied. */
export interface ResolvedOptions {
  /** The URL as given (with its password): only ever handed to node-postgres. */
  readonly url: string;
  /** `postgres://host:port/database`, no user info: for log lines and messages. */
  readonly safeUrl: string;
  /** The decoded password ('' for none): scrubbed from every message. */
  readonly password: string;
  readonly name: string;
  readonly poolSize: number;
  readonly connectTimeoutMs: number;
  readonly fetchBatchSize: number;
  readonly fetchTimeoutMs: number;
  readonly optional: boolean;
  readonly reconnect: ResolvedReconnect;
}

/** The reconnect backoff, checked, with defaults applied. */
interface ResolvedReconnect {
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
  readonly maxAttempts: number;
}

/**
 * The connection URL, or a problem recorded on `checks`. Messages never echo
 * the URL: it may carry the password.
 */
function checkUrl(
  url: unknown,
  checks: OptionChecks,
): { url: string; parsed: URL; password: string } | undefined {
  if (typeof url !== 'string') {
    checks.problem(`url: expected a string (got ${describeValue(url)})`);
    return undefined;
  }
  const parsed = URL.parse(url);
  if (parsed === null) {
    checks.problem('url: expected a URL such as postgres://user@host:6875/materialize');
    return undefined;
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
    checks.problem(`url: expected the scheme postgres: or postgresql: (got ${parsed.protocol})`);
    return undefined;
  }
  try {
    return { url, parsed, password: decodeURIComponent(parsed.password) };
  } catch {
    checks.problem('url: the password has a malformed percent-escape');
    return undefined;
  }
}

/** The reconnect backoff, every problem recorded on `checks`. */
function checkReconnect(value: unknown, checks: OptionChecks): ResolvedReconnect {
  const reconnect = (value ?? {}) as ReconnectOptions;
  if (typeof reconnect !== 'object') {
    checks.problem(`reconnect: expected an object (got ${describeValue(reconnect)})`);
  }
  const initialDelayMs = checks.wholeNumber(
    'reconnect.initialDelayMs',
    reconnect.initialDelayMs,
    { min: 1, max: MAX_TIMEOUT_MS },
    100,
  );
  const maxDelayMs = checks.wholeNumber(
    'reconnect.maxDelayMs',
    reconnect.maxDelayMs,
    { min: initialDelayMs, max: MAX_TIMEOUT_MS },
    Math.max(10_000, initialDelayMs),
  );
  const maxAttempts = checks.wholeNumber(
    'reconnect.maxAttempts',
    reconnect.maxAttempts,
    { min: 1, max: Infinity },
    Infinity,
  );
  return { initialDelayMs, maxDelayMs, maxAttempts };
}

/**
 * Checks every option and names every problem in one INVALID_OPTIONS error.
 * The URL's password is kept only to be scrubbed from messages; nothing here
 * ever echoes the URL.
 * @throws {MaterializeError} NOT_CONFIGURED, INVALID_OPTIONS
 */
export function resolveOptions(options: MaterializeOptions): ResolvedOptions {
  if (options.url === null || options.url === undefined || options.url === '') {
    throw new MaterializeError(
      'NOT_CONFIGURED',
      'no Materialize configured: set MATERIALIZE_URL (settings.materialize.url is null)',
    );
  }
  const checks = new OptionChecks();
  const url = checkUrl(options.url, checks);
  const name = checks.handleName('name', options.name, 'materialize');
  const optional = checks.boolean('optional', options.optional, false);
  const reconnect = checkReconnect(options.reconnect, checks);
  const connectTimeoutMs = checks.wholeNumber(
    'connectTimeoutMs',
    options.connectTimeoutMs,
    { min: 1, max: MAX_TIMEOUT_MS },
    5000,
  );
  const fetchTimeoutMs = checks.wholeNumber(
    'fetchTimeoutMs',
    options.fetchTimeoutMs,
    // Materialize refuses more than a day; a FETCH is bounded by both together (a dead
    // server), so their sum must also be a valid timer.
    { min: 1, max: Math.min(MAX_FETCH_TIMEOUT_MS, MAX_TIMEOUT_MS - connectTimeoutMs) },
    1000,
  );
  const poolSize = checks.wholeNumber('poolSize', options.poolSize, { min: 1, max: 1000 }, 5);
  const fetchBatchSize = checks.wholeNumber(
    'fetchBatchSize',
    options.fetchBatchSize,
    { min: 1, max: 1_000_000 },
    1000,
  );
  checks.throwIfAny((message) => new MaterializeError('INVALID_OPTIONS', message));
  // Every problem threw above, the url's included.
  const { url: href, parsed, password } = url!;
  return {
    url: href,
    safeUrl: `${parsed.protocol}//${parsed.host}${parsed.pathname === '/' ? '' : parsed.pathname}`,
    password,
    name,
    poolSize,
    connectTimeoutMs,
    fetchBatchSize,
    fetchTimeoutMs,
    optional,
    reconnect,
  };
}
