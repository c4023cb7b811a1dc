import type { ClickHouseClient, ClickHouseSettings } from '@clickhouse/client';
import { OptionChecks, describeValue } from '@flowforge/kernel';
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
  readonly idleSocketTtlMs: number;
  readonly maxOpenConnections: number;
  readonly compression: boolean;
}

/** The connection options (a subset of ClickHouseOptions). */
interface ConnectionInput {
  readonly url?: string | null | undefined;
  readonly user?: string | undefined;
  readonly password?: string | undefined;
  readonly database?: string | undefined;
  readonly idleSocketTtlMs?: number | undefined;
  readonly maxOpenConnections?: number | undefined;
  readonly compression?: boolean | undefined;
}

/** What {@link resolveOptions} reads: ClickHouseOptions without its logger and metrics. */
export interface HandleOptionsInput extends ConnectionInput {
  readonly name?: string | undefined;
  readonly parameterBinding?: 'auto' | BindingMode | undefined;
  readonly allowIdentifierParams?: boolean | undefined;
  readonly detectionTtlMs?: number | undefined;
  readonly requestTimeoutMs?: number | undefined;
  /** Typed loosely on purpose: it is checked here, by shape. */
  readonly client?: object | undefined;
}

/** The handle's options, checked, with defaults applied and exactly one way to reach a server. */
export interface HandleSettings {
  readonly name: string;
  readonly binding: 'auto' | BindingMode;
  readonly allowIdentifiers: boolean;
  readonly detectionTtlMs: number;
  readonly requestTimeoutMs: number;
  /** The caller's client (`client`), or the connection to build one for (`url`). */
  readonly server:
    | { readonly kind: 'given'; readonly client: ClickHouseClient }
    | { readonly kind: 'url'; readonly connection: ResolvedOptions };
}

const BINDINGS: readonly ('auto' | BindingMode)[] = ['auto', 'server', 'client'];

/** The structural check behind the `client` option: the one cast to the driver's type. */
function isClickHouseClient(value: unknown): value is ClickHouseClient {
  const candidate = value as { exec?: unknown; close?: unknown } | null;
  return (
    typeof candidate === 'object' &&
    candidate !== null &&
    typeof candidate.exec === 'function' &&
    typeof candidate.close === 'function'
  );
}

/**
 * Checks every option of `createClickHouse` before anything is built.
 * @throws {ClickHouseError} INVALID_OPTIONS naming every problem found (in
 *   @flowforge/config's words: `requestTimeoutMs: expected a positive whole
 *   number from 1 to 2147483647 (got 0)`); NOT_CONFIGURED when the options are
 *   valid but there is neither `client` nor `url`.
 */
export function resolveOptions(input: HandleOptionsInput): HandleSettings {
  const checks = new OptionChecks();
  const name = checks.handleName('name', input.name, 'flowforge');
  const binding = checks.oneOf('parameterBinding', input.parameterBinding, BINDINGS, 'auto');
  const allowIdentifiers = checks.boolean(
    'allowIdentifierParams',
    input.allowIdentifierParams,
    false,
  );
  const detectionTtlMs = checks.wholeNumber(
    'detectionTtlMs',
    input.detectionTtlMs,
    { min: 0, max: MAX_TIMEOUT_MS },
    300_000,
  );
  const requestTimeoutMs = checks.wholeNumber(
    'requestTimeoutMs',
    input.requestTimeoutMs,
    { min: 1, max: MAX_TIMEOUT_MS },
    10_000,
  );
  let client: ClickHouseClient | undefined;
  let connection: ResolvedOptions | undefined;
  // A given client wins: the connection options are then unused, and unchecked.
  if (input.client) {
    if (isClickHouseClient(input.client)) client = input.client;
    else checks.problem('client: expected an @clickhouse/client client, with exec() and close()');
  } else if (typeof input.url === 'string' && input.url.length > 0) {
    connection = resolveConnection(input.url, input, checks);
  }
  checks.throwIfAny((message) => new ClickHouseError('INVALID_OPTIONS', message));
  const common = { name, binding, allowIdentifiers, detectionTtlMs, requestTimeoutMs };
  if (client !== undefined) return { ...common, server: { kind: 'given', client } };
  if (connection !== undefined) return { ...common, server: { kind: 'url', connection } };
  throw new ClickHouseError(
    'NOT_CONFIGURED',
    'no ClickHouse configured: set CLICKHOUSE_URL (or pass `client`)',
  );
}

/** The URL without user info, for messages and logs. */
export function safeUrl(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname === '/' ? '' : url.pathname}`;
}

/** A percent-encoded URL user or password; a bad escape names the part, never its text. */
function decodeUserInfo(
  encoded: string,
  part: 'user' | 'password',
  checks: OptionChecks,
): string | undefined {
  try {
    return decodeURIComponent(encoded);
  } catch {
    checks.problem(`url: the ${part} in it has a malformed percent-escape`);
    return undefined;
  }
}

/** Where to connect and as whom: the URL without credentials, and the user and password. */
interface Endpoint {
  readonly url: URL;
  readonly username: string;
  readonly password: string;
}

/**
 * The URL and the credentials, from the URL when it carries them (it wins),
 * else from `user` and `password`; undefined (a problem recorded) when they
 * cannot be used. The URL and the password are never echoed in a problem.
 */
function endpointOf(
  url: string,
  input: ConnectionInput,
  checks: OptionChecks,
): Endpoint | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    checks.problem('url: expected an http(s) URL such as http://host:8123');
    return undefined;
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    checks.problem(`url: expected http: or https: (got ${parsed.protocol})`);
    return undefined;
  }
  const username = parsed.username
    ? decodeUserInfo(parsed.username, 'user', checks)
    : (input.user ?? 'default');
  const password = parsed.password
    ? decodeUserInfo(parsed.password, 'password', checks)
    : (input.password ?? '');
  parsed.username = '';
  parsed.password = '';
  if (username === '') checks.problem('user: expected a user name (got "")');
  if (username === undefined || username === '' || password === undefined) return undefined;
  return { url: parsed, username, password };
}

/** The `database` option: an identifier, as every server accepts it unquoted. */
function databaseOf(value: unknown, checks: OptionChecks): string | undefined {
  if (typeof value === 'string' && /^[A-Za-z_][A-Za-z0-9_]*$/.test(value)) return value;
  checks.problem(
    `database: expected an identifier: letters, digits and _, not starting with a digit (got ${describeValue(value)})`,
  );
  return undefined;
}

/**
 * Checks the connection options into `checks`; undefined when one cannot be
 * used (its problem recorded).
 */
function resolveConnection(
  url: string,
  input: ConnectionInput,
  checks: OptionChecks,
): ResolvedOptions | undefined {
  const endpoint = endpointOf(url, input, checks);
  const database = databaseOf(input.database ?? 'default', checks);
  const compression = checks.boolean('compression', input.compression, false);
  const idleSocketTtlMs = checks.wholeNumber(
    'idleSocketTtlMs',
    input.idleSocketTtlMs,
    { min: 1, max: 3_600_000 },
    2_000,
  );
  const maxOpenConnections = checks.wholeNumber(
    'maxOpenConnections',
    input.maxOpenConnections,
    { min: 1, max: 10_000 },
    10,
  );
  if (endpoint === undefined || database === undefined) return undefined;
  return { ...endpoint, database, idleSocketTtlMs, maxOpenConnections, compression };
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
