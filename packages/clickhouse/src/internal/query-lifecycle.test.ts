import { Readable } from 'node:stream';
import type { ClickHouseClient, ExecParams } from '@clickhouse/client';
import { describe, expect, it } from 'vitest';
import { logCapture } from '../../test/support/log-capture.js';
import { ManualClock } from '../../test/support/manual-clock.js';
import { ClickHouseError, type ClickHouseErrorCode } from '../errors.js';
import type { ClickHouseMetrics } from './metrics.js';
import type { ServerProfile } from './options.js';
import { collect, QueryLifecycle, type Execution } from './query-lifecycle.js';
import { ServerDetection } from './server-detection.js';

const TENANT = '6f1c1d0e-2b7a-4c39-9d55-0d4f3c2b1a00';

const profileOf = (readonly: 0 | 1 | 2, binding: 'server' | 'client'): ServerProfile => ({
  readonly,
  binding,
  exactJson: {},
  cancelOnClose: false,
  version: 'test',
});

/** What the fake driver answers one exec with: rows, an error, or nothing until aborted. */
type Answer =
  | { readonly rows: readonly object[]; readonly summary?: { read_rows: string } }
  | { readonly error: Error }
  | 'hang';

/**
 * A handle's query lifecycle on a fake driver, a real detection (answered
 * from `profiles`, one per detection), a manual clock and recorded outcomes.
 */
function setup(options: { profiles?: ServerProfile[]; answers?: Answer[] } = {}) {
  const clock = new ManualClock();
  const profiles = options.profiles ?? [profileOf(0, 'server')];
  const answers = options.answers ?? [];
  const sent: ExecParams[] = [];
  const streams: Readable[] = [];
  const client: Pick<ClickHouseClient, 'exec'> = {
    exec(params) {
      sent.push(params);
      const answer = answers.shift() ?? { rows: [] };
      if (answer === 'hang') {
        return new Promise((_resolve, reject) => {
          params.abort_signal?.addEventListener('abort', () => reject(new Error('aborted')));
        });
      }
      if ('error' in answer) return Promise.reject(answer.error);
      const stream = Readable.from(answer.rows.map((row) => `${JSON.stringify(row)}\n`));
      streams.push(stream);
      return Promise.resolve({
        stream,
        query_id: params.query_id ?? '',
        summary: answer.summary,
        response_headers: {},
        http_status_code: 200,
      } as never);
    },
  };
  let detections = 0;
  const detection = new ServerDetection({
    detect: () => {
      const profile = profiles[Math.min(detections, profiles.length - 1)];
      detections += 1;
      return profile ? Promise.resolve(profile) : Promise.reject(new Error('no profile'));
    },
    ttlMs: 60_000,
    timeoutMs: 1_000,
    closing: new AbortController().signal,
    clock,
  });
  const outcomes: (['ok' | 'error', number, number | undefined] | ClickHouseErrorCode)[] = [];
  const instruments: ClickHouseMetrics = {
    finished: (outcome, seconds, tally) => outcomes.push([outcome, seconds, tally.readRows]),
    failed: (code) => outcomes.push(code),
  };
  const killed: string[] = [];
  const { lines, logger } = logCapture();
  let ids = 0;
  const queries = new QueryLifecycle({
    client,
    detection,
    kill: (queryId) => killed.push(queryId),
    nextQueryId: () => `q${++ids}`,
    instruments,
    logger,
    name: 'test',
    requestTimeoutMs: 5_000,
    allowIdentifiers: false,
    compression: false,
    clock,
  });
  return {
    clock,
    queries,
    sent,
    streams,
    outcomes,
    killed,
    lines,
    detections: () => detections,
  };
}

async function rejection(promise: Promise<unknown>): Promise<ClickHouseError> {
  const error = await promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(ClickHouseError);
  return error as ClickHouseError;
}

/** Lets pending promise callbacks (detection, exec) run. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('QueryLifecycle', () => {
  it('sends the query as JSONEachRow with the guard settings, and records one ok outcome', async () => {
    const { clock, queries, sent, outcomes } = setup({
      answers: [{ rows: [{ n: 1 }, { n: 2 }], summary: { read_rows: '10' } }],
    });
    const started = queries.start('SELECT {n:UInt8} AS n;  ', { n: 1 }, { timeoutMs: 1_500 });
    await settle();
    clock.advance(250);
    const rows = await collect(started);
    expect(rows).toEqual([{ n: 1 }, { n: 2 }]);
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({
      query: 'SELECT {n:UInt8} AS n\nFORMAT JSONEachRow',
      query_id: 'q1',
      query_params: { n: 1 },
      clickhouse_settings: { max_execution_time: 2, readonly: 2 },
    });
    expect(outcomes).toEqual([['ok', 0.25, 10]]);
    expect(clock.pending).toBe(0); // the deadline is disarmed
  });

  it('binds on the client for a server that cannot, and sends a caller’s query id as given', async () => {
    const { queries, sent } = setup({ profiles: [profileOf(1, 'client')] });
    await collect(queries.start('SELECT {tenant_id:UUID}', undefined, { queryId: 'mine' }, TENANT));
    expect(sent[0]).toMatchObject({
      query: `SELECT  toUUID('${TENANT}')\nFORMAT JSONEachRow`,
      query_id: 'mine',
      clickhouse_settings: { readonly: 1 },
    });
    expect(sent[0]).not.toHaveProperty('query_params');
  });

  it('ends a query at its deadline (TIMEOUT), killing it when it runs without a server-side one', async () => {
    const { clock, queries, outcomes, killed } = setup({
      profiles: [profileOf(1, 'client')],
      answers: ['hang', 'hang'],
    });
    const first = queries.start('SELECT 1', undefined, { timeoutMs: 100 });
    await settle();
    clock.advance(100);
    const error = await rejection(first);
    expect(error).toMatchObject({ code: 'TIMEOUT', queryId: 'q1' });
    expect(error.reason).toBe('the query did not finish within its deadline of 100 ms');
    expect(killed).toEqual(['q1']);
    expect(outcomes).toEqual(['TIMEOUT', ['error', 0.1, undefined]]);
  });

  it('does not kill a readonly=0 user’s query: the server’s max_execution_time ends it', async () => {
    const { clock, queries, killed } = setup({ answers: ['hang'] });
    const query = queries.start('SELECT 1', undefined, { timeoutMs: 100 });
    await settle();
    clock.advance(100);
    expect((await rejection(query)).code).toBe('TIMEOUT');
    expect(killed).toEqual([]);
  });

  it('ends a query when the caller’s signal aborts (CANCELLED), before or after sending', async () => {
    const { queries, sent, killed } = setup({
      profiles: [profileOf(1, 'client')],
      answers: ['hang'],
    });
    const before = await rejection(
      queries.start('SELECT 1', undefined, { signal: AbortSignal.abort() }),
    );
    expect(before.code).toBe('CANCELLED');
    expect(sent).toHaveLength(0);

    const controller = new AbortController();
    const during = queries.start('SELECT 1', undefined, { signal: controller.signal });
    await settle();
    expect(sent).toHaveLength(1);
    controller.abort();
    expect((await rejection(during)).code).toBe('CANCELLED');
    expect(killed).toEqual(['q2']);
  });

  it('close() aborts queries in flight (CLOSED, no kill) and refuses later ones before sending', async () => {
    const { queries, sent, killed, outcomes } = setup({
      profiles: [profileOf(1, 'client')],
      answers: ['hang'],
    });
    const running = queries.start('SELECT 1', undefined);
    await settle();
    queries.close();
    expect((await rejection(running)).code).toBe('CLOSED');
    expect(killed).toEqual([]);
    expect((await rejection(queries.start('SELECT 1', undefined))).code).toBe('CLOSED');
    expect(sent).toHaveLength(1);
    expect(outcomes.filter((outcome) => outcome === 'CLOSED')).toHaveLength(2);
  });

  it('fails a body that ends after the handle gave up on the query', async () => {
    const { clock, queries } = setup({ answers: [{ rows: [{ n: 1 }] }] });
    const execution = await queries.start('SELECT 1', undefined, { timeoutMs: 50 });
    clock.advance(50);
    expect(() => execution.complete()).toThrow(
      expect.objectContaining({ code: 'TIMEOUT', queryId: 'q1' }),
    );
  });

  it('records an early stop as ok, destroying the body, and any outcome once', async () => {
    const { queries, streams, outcomes } = setup({ answers: [{ rows: [{ n: 1 }, { n: 2 }] }] });
    const execution: Execution = await queries.start('SELECT 1', undefined);
    execution.stop();
    expect(streams[0]?.destroyed).toBe(true);
    execution.stop();
    execution.fail(new Error('late'));
    expect(outcomes).toEqual([['ok', 0, undefined]]);
  });

  it('maps, logs and counts a server error; AUTH_FAILED makes the next query detect again', async () => {
    const { queries, outcomes, lines, detections } = setup({
      answers: [
        { error: new Error('Code: 516, e.displayText() = DB::Exception: bad password') },
        { rows: [] },
      ],
    });
    const error = await rejection(collect(queries.start('SELECT 1', undefined)));
    expect(error).toMatchObject({ code: 'AUTH_FAILED', serverCode: 516, queryId: 'q1' });
    expect(outcomes[0]).toBe('AUTH_FAILED');
    expect(lines).toEqual([
      expect.objectContaining({
        level: 'debug',
        msg: 'clickhouse: query failed',
        clickhouse: 'test',
        code: 'AUTH_FAILED',
        server_code: 516,
        query_id: 'q1',
      }),
    ]);
    expect(detections()).toBe(1);
    await collect(queries.start('SELECT 1', undefined));
    expect(detections()).toBe(2);
  });

  it('refuses settings for a readonly=1 user (READONLY) before sending', async () => {
    const { queries, sent } = setup({ profiles: [profileOf(1, 'client')] });
    const error = await rejection(
      queries.start('SELECT 1', undefined, { settings: { max_threads: 1 } }),
    );
    expect(error.code).toBe('READONLY');
    expect(sent).toHaveLength(0);
  });

  it('refuses a bad argument before the detection, and counts it', async () => {
    const { queries, outcomes, detections } = setup();
    expect((await rejection(queries.start('  ', undefined))).code).toBe('INVALID_ARGUMENT');
    expect(detections()).toBe(0);
    expect(outcomes).toEqual(['INVALID_ARGUMENT', ['error', 0, undefined]]);
  });
});
