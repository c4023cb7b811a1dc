import type { ClickHouseSettings } from '@clickhouse/client';
import { ClickHouseError } from '../errors.js';
import type { BindingMode } from './binder.js';

/** Longest timer Node accepts (a longer one fires after 1 ms). */
export const MAX_TIMEOUT_MS = 2_147_483_647;

/** The connection options, checked and with defaults applied. */
export interface ResolvedOptions {
  /** The server's origin and path, credentials removed. */
  readonly url: URL;
  readonly username: string;
  readonly password: string;
  readonly database: string;
  readonly requestTimeoutMs: number;
  readonly idleSocketTtlMs: number;
  readonly maxOpenConnections: number;
  readonly compression: boolean;
}

/** The options `resolveConnection` reads (a subset of ClickHouseOptions). */
export interface ConnectionInput {
  readonly url?: string | null | undefined;
  readonly user?: string | undefined;
  readonly password?: string | undefined;
  readonly database?: string | undefined;
  readonly requestTimeoutMs?: number | undefined;
  readonly idleSocketTtlMs?: number | undefined;
  readonly maxOpenConnections?: number | undefined;
  readonly compression?: boolean | undefined;
}

function invalidOptions(message: string): ClickHouseError {
  return new ClickHouseError('INVALID_OPTIONS', message);
}

/** An integer option within [min, max], or its default. @throws {ClickHouseError} INVALID_OPTIONS */
export function integerOption(
  name: string,
  value: number | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw invalidOptions(`${name} must be an integer from ${min} to ${max}, got ${String(value)}`);
  }
  return value;
}

/** The URL without user info, for messages and logs. */
export function safeUrl(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname === '/' ? '' : url.pathname}`;
}

/** A percent-encoded URL user or password; a bad escape names the part, never its text. */
function decodeUserInfo(encoded: string, part: 'user' | 'password'): string {
  try {
    return decodeURIComponent(encoded);
  } catch {
    throw invalidOptions(`the ${part} in url has a malformed percent-escape`);
  }
}

/**
 * Checks the connection options. Credentials in the URL are taken as the user
 * and password (and removed from the URL) when present; otherwise `user` and
 * `password` apply. Nothing here is ever echoed with a password in it.
 * @throws {ClickHouseError} INVALID_OPTIONS
 */
export function resolveConnection(url: string, input: ConnectionInput): ResolvedOptions {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw invalidOptions('url is not a URL (expected http://host:8123)');
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw invalidOptions(`url must be http: or https:, got ${parsed.protocol}`);
  }
  const username = parsed.username
    ? decodeUserInfo(parsed.username, 'user')
    : (input.user ?? 'default');
  const password = parsed.password
    ? decodeUserInfo(parsed.password, 'password')
    : (input.password ?? '');
  parsed.username = '';
  parsed.password = '';
  if (username.length === 0) throw invalidOptions('user must not be empty');
  const database = input.database ?? 'default';
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(database)) {
    throw invalidOptions('database must be an identifier (letters, digits, underscore)');
  }
  const compression = input.compression ?? false;
  if (typeof compression !== 'boolean') throw invalidOptions('compression must be a boolean');
  return {
    url: parsed,
    username,
    password,
    database,
    requestTimeoutMs: integerOption(
      'requestTimeoutMs',
      input.requestTimeoutMs,
      10_000,
      1,
      MAX_TIMEOUT_MS,
    ),
    idleSocketTtlMs: integerOption('idleSocketTtlMs', input.idleSocketTtlMs, 2_000, 1, 3_600_000),
    maxOpenConnections: integerOption(
      'maxOpenConnections',
      input.maxOpenConnections,
      10,
      1,
      10_000,
    ),
    compression,
  };
}

/** Per-query settings a caller may pass: a name, and a string, number or boolean. */
export type QuerySettings = Readonly<Record<string, string | number | boolean>>;

/**
 * The settings a caller may pass per query: limits, overflow modes and tuning
 * of a read, nothing else. An allow-list because a deny-list misses what it
 * does not know: on 18.16 `profile` re-applies a server profile (readonly=0
 * included) past the readonly guard, `replace_running_query` kills another
 * query with the same id, and every server version adds settings. A name
 * joins the list with a test that it cannot write or reach other queries.
 */
const QUERY_SETTINGS: ReadonlySet<string> = new Set([
  // result and read limits
  'max_result_rows',
  'max_result_bytes',
  'result_overflow_mode',
  'max_rows_to_read',
  'max_bytes_to_read',
  'read_overflow_mode',
  'max_columns_to_read',
  'max_temporary_columns',
  'max_temporary_non_const_columns',
  // time and speed
  'max_execution_time',
  'timeout_overflow_mode',
  'min_execution_speed',
  'timeout_before_checking_execution_speed',
  // GROUP BY, ORDER BY, DISTINCT, IN, JOIN
  'max_rows_to_group_by',
  'group_by_overflow_mode',
  'max_bytes_before_external_group_by',
  'max_rows_to_sort',
  'max_bytes_to_sort',
  'sort_overflow_mode',
  'max_bytes_before_external_sort',
  'max_rows_in_distinct',
  'max_bytes_in_distinct',
  'distinct_overflow_mode',
  'max_rows_in_set',
  'max_bytes_in_set',
  'set_overflow_mode',
  'max_rows_in_join',
  'max_bytes_in_join',
  'join_overflow_mode',
  'join_use_nulls',
  'join_default_strictness',
  // query complexity
  'max_subquery_depth',
  'max_ast_depth',
  'max_ast_elements',
  'max_expanded_ast_elements',
  // resources and tuning
  'max_memory_usage',
  'max_threads',
  'max_block_size',
  'preferred_block_size_bytes',
  'use_uncompressed_cache',
  // result shape
  'extremes',
  'totals_mode',
  'totals_auto_threshold',
]);

/**
 * Checks a caller's per-query settings against {@link QUERY_SETTINGS}.
 * @throws {ClickHouseError} INVALID_ARGUMENT
 */
export function checkSettings(settings: QuerySettings): void {
  for (const [name, value] of Object.entries(settings)) {
    if (!QUERY_SETTINGS.has(name)) {
      throw new ClickHouseError(
        'INVALID_ARGUMENT',
        `setting ${JSON.stringify(name)} may not be set per query through this client (only the limits and tuning settings listed in its README)`,
      );
    }
    const type = typeof value;
    if (type !== 'string' && type !== 'number' && type !== 'boolean') {
      throw new ClickHouseError(
        'INVALID_ARGUMENT',
        `setting "${name}" must be a string, number or boolean`,
      );
    }
  }
}

/** What the handle learnt about the server and its user at first use. */
export interface ServerProfile {
  /** The user's `readonly` level: 1 forbids every setting, 2 forbids writes but allows settings. */
  readonly readonly: 0 | 1 | 2;
  readonly binding: BindingMode;
  /** Settings that make the JSON exact (quoted 64-bit integers and decimals) where the defaults are not. */
  readonly exactJson: Readonly<Record<string, 1>>;
  /** The server cancels a read when its HTTP client goes away (setting known, not yet on). */
  readonly cancelOnClose: boolean;
  readonly version: string;
}

/**
 * `readonly=1` alone, with the driver's compression switch dropped (`undefined`
 * makes it send nothing): all a readonly=1 user's server takes.
 */
export function readonlyOneSettings(compression: boolean): ClickHouseSettings {
  const settings = compression
    ? { enable_http_compression: undefined, readonly: 1 }
    : { readonly: 1 };
  return settings as unknown as ClickHouseSettings;
}

/**
 * The settings of one query. Every query carries a `readonly` of its own, so
 * the guard never depends on how fresh the detected level is (a profile
 * loosened at runtime still gets it):
 * - readonly=1 user: `readonly=1` and nothing else ({@link readonlyOneSettings}).
 *   The server refuses any other setting, even the `enable_http_compression`
 *   the driver adds itself, but takes one that leaves a value unchanged;
 * - readonly=0 or 2 user: exact-JSON settings, cancel-on-disconnect, the
 *   server-side deadline, the caller's, and `readonly=2` last, so that no
 *   earlier key can undo it (2 and not 1: 1 would also refuse the settings
 *   before it in a SET-based transport such as chdb, and every SETTINGS clause).
 *   A readonly=2 user's server takes the unchanged value, and refuses it (164)
 *   once anything before it changed `readonly`.
 * @throws {ClickHouseError} READONLY when a readonly=1 user's query passes settings
 */
export function querySettings(
  profile: ServerProfile,
  caller: QuerySettings | undefined,
  timeoutMs: number,
  compression: boolean,
): ClickHouseSettings {
  const callerCount = caller === undefined ? 0 : Object.keys(caller).length;
  if (profile.readonly === 1) {
    if (callerCount > 0) {
      throw new ClickHouseError(
        'READONLY',
        'the ClickHouse user has readonly=1, which refuses every per-query setting: drop `settings` or use a readonly=0/2 user',
      );
    }
    return readonlyOneSettings(compression);
  }
  const settings: Record<string, string | number | boolean> = {
    ...profile.exactJson,
    ...(profile.cancelOnClose ? { cancel_http_readonly_queries_on_client_close: 1 } : {}),
    max_execution_time: Math.ceil(timeoutMs / 1000),
    ...caller,
    readonly: 2,
  };
  return settings;
}
