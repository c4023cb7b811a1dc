import { AsyncLocalStorage } from 'node:async_hooks';
import {
  CompiledQuery,
  type DatabaseConnection,
  type DatabaseIntrospector,
  type Dialect,
  type DialectAdapter,
  type Driver,
  isAbortedTransactionError,
  type Kysely,
  type QueryCompiler,
  type QueryResult,
  type TransactionSettings,
} from 'kysely';
import { TENANT_SETTING } from '../tenant.js';
import { DatabaseError } from '../errors.js';
import { toDatabaseError } from './sqlstate.js';

/**
 * What `withTransaction` / `withTenant` tell the driver about the transaction
 * they are opening. Kysely gives a driver no way to receive per-transaction
 * arguments, so they travel in async context, claimed once by `beginTransaction`.
 */
export interface TransactionScope {
  /** The handle that opened it; another handle's transactions are not ours to set up. */
  readonly owner: symbol;
  /** A validated, lower-case UUID; `null` for a transaction without a tenant. */
  readonly tenantId: string | null;
  state: 'pending' | 'open' | 'done';
}

export const transactionScope: AsyncLocalStorage<TransactionScope> =
  new AsyncLocalStorage<TransactionScope>();

export interface ScopedDialectOptions {
  readonly owner: symbol;
  readonly kind: 'postgres' | 'pglite';
  /** Validated role name tenant transactions switch to; `null` to stay the login role. */
  readonly appRole: string | null;
  /**
   * Told about the statements Kysely's own `log` never sees, because the driver
   * sends them (begin, commit, rollback, savepoints), and about connections that
   * could not be had (`operation` is `connect`).
   */
  readonly observe?: (operation: string, durationMs: number, error?: DatabaseError) => void;
}

/**
 * Wraps Kysely's Postgres or PGlite dialect so that
 * - every driver error surfaces as a DatabaseError,
 * - a tenant transaction starts with its tenant (and role) set in the same round
 *   trip as BEGIN, and
 * - a closed handle answers CLOSED (Kysely's own destroy would throw a bare Error).
 */
export class ScopedDialect implements Dialect {
  readonly #base: Dialect;
  readonly #options: ScopedDialectOptions;
  #driver: ScopedDriver | undefined;

  constructor(base: Dialect, options: ScopedDialectOptions) {
    this.#base = base;
    this.#options = options;
  }

  createDriver(): Driver {
    this.#driver = new ScopedDriver(this.#base.createDriver(), this.#options);
    return this.#driver;
  }
  createQueryCompiler(): QueryCompiler {
    return this.#base.createQueryCompiler();
  }
  createAdapter(): DialectAdapter {
    return this.#base.createAdapter();
  }
  createIntrospector(db: Kysely<unknown>): DatabaseIntrospector {
    return this.#base.createIntrospector(db);
  }

  /** Ends the pool (or PGlite); from then on every use is DatabaseError CLOSED. */
  async close(): Promise<void> {
    await this.#driver?.destroy();
  }
}

class ScopedConnection implements DatabaseConnection {
  readonly inner: DatabaseConnection;

  constructor(inner: DatabaseConnection) {
    this.inner = inner;
  }

  async executeQuery<R>(compiledQuery: CompiledQuery): Promise<QueryResult<R>> {
    try {
      return await this.inner.executeQuery<R>(compiledQuery);
    } catch (error) {
      throw toDatabaseError(error);
    }
  }

  async *streamQuery<R>(
    compiledQuery: CompiledQuery,
    chunkSize: number,
  ): AsyncIterableIterator<QueryResult<R>> {
    try {
      yield* this.inner.streamQuery<R>(compiledQuery, chunkSize);
    } catch (error) {
      throw toDatabaseError(error);
    }
  }
}

class ScopedDriver implements Driver {
  readonly #inner: Driver;
  readonly #options: ScopedDialectOptions;
  /** One wrapper per driver connection: Kysely instruments each connection object once. */
  readonly #wrappers = new WeakMap<DatabaseConnection, ScopedConnection>();
  #destroyed: Promise<void> | undefined;

  constructor(inner: Driver, options: ScopedDialectOptions) {
    this.#inner = inner;
    this.#options = options;
  }

  #assertOpen(): void {
    if (this.#destroyed) throw new DatabaseError('CLOSED', 'the database handle is closed');
  }

  /** Runs one driver step: errors become DatabaseErrors, and the step is observed. */
  async #step<T>(operation: string, run: () => Promise<T>, keepAborted = false): Promise<T> {
    const started = performance.now();
    try {
      const result = await run();
      this.#options.observe?.(operation, performance.now() - started);
      return result;
    } catch (error) {
      // Kysely's AbortedTransactionError passes through: Kysely itself acts on it.
      if (keepAborted && isAbortedTransactionError(error)) throw error;
      const mapped = toDatabaseError(error);
      this.#options.observe?.(operation, performance.now() - started, mapped);
      throw mapped;
    }
  }

  async init(): Promise<void> {
    this.#assertOpen();
    await this.#step('connect', () => this.#inner.init());
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    this.#assertOpen();
    // Queries through `trx` reuse its connection and never come here; anything
    // that does, inside an open transaction of this handle, would need a second
    // connection: a deadlock on PGlite's single session, pool starvation on pg.
    const scope = transactionScope.getStore();
    if (scope?.owner === this.#options.owner && scope.state === 'open') {
      throw new DatabaseError(
        'NESTED_TRANSACTION',
        'a query outside `trx` inside an open transaction of this handle: use `trx`',
      );
    }
    const connection = await this.#step('connect', () => this.#inner.acquireConnection());
    let wrapper = this.#wrappers.get(connection);
    if (!wrapper) {
      wrapper = new ScopedConnection(connection);
      this.#wrappers.set(connection, wrapper);
    }
    return wrapper;
  }

  async releaseConnection(connection: DatabaseConnection): Promise<void> {
    await this.#inner.releaseConnection(unwrap(connection));
  }

  async beginTransaction(
    connection: DatabaseConnection,
    settings: TransactionSettings,
  ): Promise<void> {
    try {
      await this.#begin(connection, settings);
    } catch (error) {
      // Kysely sends no ROLLBACK when BEGIN throws, but BEGIN may have opened the
      // transaction before the settings failed (a missing role, say): without this
      // the connection returns to the pool stuck in an aborted transaction (and
      // PGlite's transaction would wait forever).
      await this.rollbackTransaction(connection);
      throw error;
    }
  }

  async #begin(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    const scope = transactionScope.getStore();
    const claimed =
      scope?.owner === this.#options.owner && scope.state === 'pending' ? scope : undefined;
    if (claimed) claimed.state = 'open';
    const tenantId = claimed?.tenantId ?? null;
    const inner = unwrap(connection);
    const { appRole, kind } = this.#options;
    if (tenantId === null) {
      await this.#step('begin', async () => {
        await this.#inner.beginTransaction(inner, settings);
        if (kind === 'pglite') await applySettings(inner, settings);
      });
      return;
    }
    if (kind === 'postgres') {
      // One simple-protocol message (no bind parameters, so several statements
      // are allowed): BEGIN and the transaction-local settings in one round trip.
      // Both values are inlined, which is safe only because they are validated:
      // tenantId is a canonical UUID, appRole a lower-case identifier.
      const set = [`set_config('${TENANT_SETTING}', '${tenantId}', true)`];
      if (appRole !== null) set.push(`set_config('role', '${appRole}', true)`);
      const text = `${beginSql(settings)}; select ${set.join(', ')}`;
      await this.#step('begin', () => inner.executeQuery(CompiledQuery.raw(text)));
      return;
    }
    // PGlite opens its transactions itself (exclusively) and ignores Kysely's
    // settings; they follow in-process, as SET TRANSACTION.
    await this.#step('begin', async () => {
      await this.#inner.beginTransaction(inner, settings);
      await applySettings(inner, settings);
      await inner.executeQuery(
        appRole === null
          ? CompiledQuery.raw(`select set_config($1, $2, true)`, [TENANT_SETTING, tenantId])
          : CompiledQuery.raw(`select set_config($1, $2, true), set_config('role', $3, true)`, [
              TENANT_SETTING,
              tenantId,
              appRole,
            ]),
      );
    });
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    await this.#step('commit', () => this.#inner.commitTransaction(unwrap(connection)), true);
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    // A failed ROLLBACK is observed, not thrown: Kysely would throw it in place of
    // the error that caused the rollback. The session it failed on is gone (the
    // server rolled back with it) and the Postgres driver has marked the connection
    // to be discarded on release.
    await this.#step('rollback', () => this.#inner.rollbackTransaction(unwrap(connection))).catch(
      () => undefined,
    );
  }

  async savepoint(
    connection: DatabaseConnection,
    name: string,
    compileQuery: QueryCompiler['compileQuery'],
  ): Promise<void> {
    await this.#step('savepoint', () =>
      this.#inner.savepoint!(unwrap(connection), name, compileQuery),
    );
  }

  async rollbackToSavepoint(
    connection: DatabaseConnection,
    name: string,
    compileQuery: QueryCompiler['compileQuery'],
  ): Promise<void> {
    await this.#step('rollback', () =>
      this.#inner.rollbackToSavepoint!(unwrap(connection), name, compileQuery),
    );
  }

  async releaseSavepoint(
    connection: DatabaseConnection,
    name: string,
    compileQuery: QueryCompiler['compileQuery'],
  ): Promise<void> {
    await this.#step('release', () =>
      this.#inner.releaseSavepoint!(unwrap(connection), name, compileQuery),
    );
  }

  destroy(): Promise<void> {
    this.#destroyed ??= this.#inner.destroy();
    return this.#destroyed;
  }
}

function unwrap(connection: DatabaseConnection): DatabaseConnection {
  return connection instanceof ScopedConnection ? connection.inner : connection;
}

/** `SET TRANSACTION …` for a transaction PGlite began without Kysely's settings. */
async function applySettings(
  connection: DatabaseConnection,
  settings: TransactionSettings,
): Promise<void> {
  const modes = transactionModes(settings);
  if (modes.length > 0) {
    await connection.executeQuery(CompiledQuery.raw(`set transaction ${modes.join(' ')}`));
  }
}

function transactionModes(settings: TransactionSettings): string[] {
  // Both values were checked against Kysely's closed lists by the transaction builder.
  return [
    ...(settings.isolationLevel ? [`isolation level ${settings.isolationLevel}`] : []),
    ...(settings.accessMode ? [settings.accessMode] : []),
  ];
}

function beginSql(settings: TransactionSettings): string {
  const modes = transactionModes(settings);
  return modes.length === 0 ? 'begin' : `start transaction ${modes.join(' ')}`;
}
