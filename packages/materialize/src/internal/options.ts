import { MaterializeError } from '../errors.js';
import type { MaterializeOptions } from '../options.js';

/** Longest timer Node accepts (a longer one fires after 1 ms). */
const MAX_TIMEOUT_MS = 2_147_483_647;

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

export interface ResolvedReconnect {
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
  readonly maxAttempts: number;
}

function invalid(message: string): MaterializeError {
  return new MaterializeError('INVALID_OPTIONS', message);
}

/** An integer option within [min, max], or its default. @throws {MaterializeError} INVALID_OPTIONS */
function integerOption(
  name: string,
  value: unknown,
  fallback: number,
  min: number,
  max: number,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalid(`${name} must be an integer from ${min} to ${max}`);
  }
  return value;
}

/**
 * Checks every option. The URL's password is kept only to be scrubbed from
 * messages; nothing here ever echoes the URL.
 * @throws {MaterializeError} NOT_CONFIGURED, INVALID_OPTIONS
 */
export function resolveOptions(options: MaterializeOptions): ResolvedOptions {
  const { url } = options;
  if (url === null || url === undefined || url === '') {
    throw new MaterializeError(
      'NOT_CONFIGURED',
      'no Materialize configured: set MATERIALIZE_URL (settings.materialize.url is null)',
    );
  }
  if (typeof url !== 'string') throw invalid('url must be a string');
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw invalid('url is not a URL (expected postgres://user@host:6875/materialize)');
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
    throw invalid(`url must be postgres: or postgresql:, got ${parsed.protocol}`);
  }
  let password: string;
  try {
    password = decodeURIComponent(parsed.password);
  } catch {
    throw invalid('the password in url has a malformed percent-escape');
  }
  const name = options.name ?? 'materialize';
  if (typeof name !== 'string' || !/^[A-Za-z0-9_.:-]{1,64}$/.test(name)) {
    throw invalid('name must be 1–64 letters, digits, _ . : or -');
  }
  const optional = options.optional ?? false;
  if (typeof optional !== 'boolean') throw invalid('optional must be a boolean');
  const reconnect = options.reconnect ?? {};
  if (typeof reconnect !== 'object') throw invalid('reconnect must be an object');
  const initialDelayMs = integerOption(
    'reconnect.initialDelayMs',
    reconnect.initialDelayMs,
    100,
    1,
    MAX_TIMEOUT_MS,
  );
  const maxDelayMs = integerOption(
    'reconnect.maxDelayMs',
    reconnect.maxDelayMs,
    Math.max(10_000, initialDelayMs),
    initialDelayMs,
    MAX_TIMEOUT_MS,
  );
  const maxAttempts = reconnect.maxAttempts ?? Infinity;
  if (
    typeof maxAttempts !== 'number' ||
    !(maxAttempts === Infinity || (Number.isInteger(maxAttempts) && maxAttempts >= 1))
  ) {
    throw invalid('reconnect.maxAttempts must be a positive integer or Infinity');
  }
  const connectTimeoutMs = integerOption(
    'connectTimeoutMs',
    options.connectTimeoutMs,
    5000,
    1,
    MAX_TIMEOUT_MS,
  );
  const fetchTimeoutMs = integerOption(
    'fetchTimeoutMs',
    options.fetchTimeoutMs,
    1000,
    1,
    MAX_TIMEOUT_MS - connectTimeoutMs,
  );
  return {
    url,
    safeUrl: `${parsed.protocol}//${parsed.host}${parsed.pathname === '/' ? '' : parsed.pathname}`,
    password,
    name,
    poolSize: integerOption('poolSize', options.poolSize, 5, 1, 1000),
    connectTimeoutMs,
    fetchBatchSize: integerOption('fetchBatchSize', options.fetchBatchSize, 1000, 1, 1_000_000),
    fetchTimeoutMs,
    optional,
    reconnect: { initialDelayMs, maxDelayMs, maxAttempts },
  };
}

/**
 * The delay before reconnect attempt `attempt` (1-based): `initialDelayMs`
 * doubling per attempt, capped at `maxDelayMs`, drawn from [delay/2, delay].
 */
export function backoffDelay(
  reconnect: ResolvedReconnect,
  attempt: number,
  random: () => number = Math.random,
): number {
  const exponent = Math.min(Math.max(attempt - 1, 0), 30);
  const delay = Math.min(reconnect.maxDelayMs, reconnect.initialDelayMs * 2 ** exponent);
  return Math.max(1, Math.round(delay / 2 + (random() * delay) / 2));
}
