import type { ClickHouseClient } from '@clickhouse/client';
import type { Logger } from '@flowforge/observability';
import { quoteString } from './binder.js';
import { deadline, type Clock } from './clock.js';
import { readonlyOneSettings } from './options.js';

/** What {@link createQueryKiller} needs. */
export interface QueryKillerOptions {
  /** The driver's `command()` is all it uses. */
  readonly client: Pick<ClickHouseClient, 'command'>;
  /** Aborts when the handle closes: no kill is sent after, and one in flight stops. */
  readonly closing: AbortSignal;
  /** The deadline of one KILL QUERY. */
  readonly timeoutMs: number;
  /** The `compression` option: the driver's switch is dropped from the kill's settings. */
  readonly compression: boolean;
  readonly logger: Logger | undefined;
  /** The handle's name, for the log. */
  readonly name: string;
  readonly clock: Clock;
}

/**
 * What asks the server to stop a query we gave up on (deadline, signal).
 * 18.16 notices a closed socket only when it next writes, so a query that
 * reads much and returns little runs on; the user may KILL its own queries
 * even at readonly=1 (measured on 18.16 and chdb). Fire and forget: the
 * outcome is logged at debug, never thrown.
 */
export function createQueryKiller(options: QueryKillerOptions): (queryId: string) => void {
  const { client, closing, logger, name } = options;
  return (queryId) => {
    if (closing.aborted) return;
    const timer = deadline(options.clock, options.timeoutMs, 'timeout');
    void client
      .command({
        query: `KILL QUERY WHERE query_id = ${quoteString(queryId)} ASYNC`,
        // Readonly as the user (nothing else is accepted at readonly=1): its own queries only.
        clickhouse_settings: readonlyOneSettings(options.compression),
        abort_signal: AbortSignal.any([closing, timer.signal]),
      })
      .then(
        () =>
          logger?.debug(
            { clickhouse: name, query_id: queryId },
            'clickhouse: killed a query given up on',
          ),
        (error: unknown) =>
          logger?.debug(
            { clickhouse: name, query_id: queryId, err: error },
            'clickhouse: could not kill a query given up on',
          ),
      )
      .finally(timer.cancel);
  };
}
