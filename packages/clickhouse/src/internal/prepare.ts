import { OptionChecks } from '@flowforge/kernel';
import { ClickHouseError } from '../errors.js';
import {
  bindParams,
  scanPlaceholders,
  type BoundQuery,
  type Placeholder,
  type QueryParams,
} from './binder.js';
import { checkSettings, MAX_TIMEOUT_MS, type QuerySettings } from './options.js';
import { isValidQueryId } from './query-id.js';
import { tenantParams } from './tenant-guard.js';

/** The options of one query, as `query()` and `stream()` take them. */
export interface QueryInput {
  readonly signal?: AbortSignal;
  readonly timeoutMs?: number;
  readonly queryId?: string;
  readonly settings?: QuerySettings;
}

/** What the handle's options decide for every query. */
export interface PrepareDefaults {
  /** The deadline of a query without `timeoutMs`. */
  readonly requestTimeoutMs: number;
  /** The `allowIdentifierParams` option. */
  readonly allowIdentifiers: boolean;
}

/** A query checked and ready to send. */
export interface Prepared {
  readonly sql: string;
  readonly placeholders: readonly Placeholder[];
  /** The caller's params, with the tenant bound for a tenant query. */
  readonly params: QueryParams | undefined;
  readonly timeoutMs: number;
  /** The caller's own query id, if any. */
  readonly queryId: string | undefined;
  readonly settings: QuerySettings | undefined;
  /** The query as a server that binds parameters gets it. */
  readonly serverBound: BoundQuery;
}

/**
 * Checks what can be checked before sending: the SQL, the query options, the
 * params against the placeholders and, for a tenant query, the tenant guard.
 * A bad value never waits for (nor depends on) a server: this runs before the
 * first use detects how the server binds, and client mode binds again later.
 * @throws {ClickHouseError} INVALID_ARGUMENT
 */
export function prepareQuery(
  sql: string,
  params: QueryParams | undefined,
  input: QueryInput,
  tenantId: string | undefined,
  defaults: PrepareDefaults,
): Prepared {
  if (typeof sql !== 'string' || sql.trim().length === 0) {
    throw new ClickHouseError('INVALID_ARGUMENT', 'sql must be a non-empty string');
  }
  const checks = new OptionChecks();
  const timeoutMs = checks.wholeNumber(
    'timeoutMs',
    input.timeoutMs,
    { min: 1, max: MAX_TIMEOUT_MS },
    defaults.requestTimeoutMs,
  );
  if (input.queryId !== undefined && !isValidQueryId(input.queryId)) {
    checks.problem('queryId: expected 1 to 128 visible ASCII characters');
  }
  checks.throwIfAny((message) => new ClickHouseError('INVALID_ARGUMENT', message));
  if (input.settings !== undefined) checkSettings(input.settings);
  const placeholders = scanPlaceholders(sql);
  const all = tenantId === undefined ? params : tenantParams(tenantId, placeholders, params);
  return {
    sql,
    placeholders,
    params: all,
    timeoutMs,
    queryId: input.queryId,
    settings: input.settings,
    serverBound: bindParams(sql, placeholders, all, 'server', defaults.allowIdentifiers),
  };
}
