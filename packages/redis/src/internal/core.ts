import { Command } from 'ioredis';
import { RedisError } from '../errors.js';
import type { Client, Connection } from './connection.js';
import { observe, type CommandTally, type RedisInstruments } from './metrics.js';
import { groupBySlot } from './slot.js';

const UTF8 = { replyEncoding: 'utf8' } as const;

/** An argument of a command, as ioredis takes it. */
type Argument = string | number | Buffer;

/**
 * Times out commands with one timer per connection instead of one per command:
 * ioredis's `commandTimeout` arms and clears a timer for every command, which
 * for 100 pipelined GETs cost 0.6 to 2.3 µs more Node CPU per GET (0.84–0.96×
 * the sweep's CPU efficiency, 0.85–0.96× its GETs/s, in all 12 rounds of four
 * runs; the same connection with no timeout at all: 0.96–1.06×), measured by
 * test/command-timeout.bench.ts. Commands are tracked in the order they were
 * sent; a sweep every `interval` ms rejects those sent at least `timeoutMs`
 * ago through the command's public `reject`, as ioredis's own timer does
 * ("Command timed out"; the reply, when it comes, is dropped). So a command
 * times out after between `timeoutMs` and `timeoutMs + interval` ms.
 * test/ioredis-seam.int.test.ts fails on an ioredis that stops honouring that.
 */
export class Deadlines {
  readonly #interval: number;
  readonly #ticks: number;
  #commands: Command[] = [];
  #deadlines: number[] = [];
  #head = 0;
  #tick = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(timeoutMs: number) {
    this.#interval = Math.min(250, Math.max(5, Math.ceil(timeoutMs / 8)));
    this.#ticks = Math.ceil(timeoutMs / this.#interval);
  }

  track(command: Command): void {
    const commands = this.#commands;
    while (this.#head < commands.length && (commands[this.#head] as Command).isSettled) {
      this.#head += 1;
    }
    if (this.#head === commands.length && this.#head > 0) {
      commands.length = 0;
      this.#deadlines.length = 0;
      this.#head = 0;
    }
    commands.push(command);
    // Sent during tick t: at least `ticks` whole intervals have passed by sweep t + ticks + 1.
    this.#deadlines.push(this.#tick + this.#ticks + 1);
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => this.#sweep(), this.#interval);
      this.#timer.unref();
    }
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #sweep(): void {
    this.#tick += 1;
    const commands = this.#commands;
    const deadlines = this.#deadlines;
    while (this.#head < commands.length) {
      const command = commands[this.#head] as Command;
      if (!command.isSettled) {
        if ((deadlines[this.#head] as number) > this.#tick) break;
        command.reject(new Error('Command timed out'));
      }
      this.#head += 1;
    }
    if (this.#head === commands.length) {
      this.#commands = [];
      this.#deadlines = [];
      this.#head = 0;
      this.stop();
    } else if (this.#head > 1024) {
      this.#commands = commands.slice(this.#head);
      this.#deadlines = deadlines.slice(this.#head);
      this.#head = 0;
    }
  }
}

/** Sends commands on one connection: the readiness gate, the timeout, timing, error mapping and counting. */
export interface Runner {
  /**
   * Sends `name args` when the connection is ready (waiting only for an
   * attempt in progress), times it under `tally`, maps its error and counts
   * it. `transform` shapes the reply; `target` sends it to one Cluster node
   * instead of the client.
   */
  readonly run: <T = unknown, R = unknown>(
    tally: CommandTally | undefined,
    name: string,
    args: readonly Argument[],
    transform?: (reply: R) => T,
    target?: Client,
  ) => Promise<T>;
  /** Maps and counts an error (for work that does not go through run). */
  readonly fail: (error: unknown) => RedisError;
  /** Stops the timeout sweep. */
  readonly stop: () => void;
}

export function createRunner(
  connection: Connection,
  instruments: RedisInstruments | undefined,
  timeoutMs: number,
): Runner {
  const { client } = connection;
  const keyPrefix = (client.options as { keyPrefix?: string }).keyPrefix;
  const options = keyPrefix
    ? { keyPrefix, replyEncoding: 'utf8' as const }
    : { replyEncoding: 'utf8' as const };
  const deadlines = new Deadlines(timeoutMs);

  const fail = (error: unknown): RedisError => {
    const mapped = connection.error(error);
    instruments?.error(mapped.code);
    return mapped;
  };
  const rethrow = (error: unknown): never => {
    throw fail(error);
  };

  /**
   * The hot path: one ioredis Command, the duration and the error mapping in
   * one `.then` on its promise. (Replacing the command's resolve and reject
   * instead, to spare that promise, measured no cheaper.)
   */
  function send<T, R>(
    tally: CommandTally | undefined,
    name: string,
    args: readonly Argument[],
    transform: ((reply: R) => T) | undefined,
    target: Client | undefined,
  ): Promise<T> {
    const command = new Command(name, args as Argument[], target ? UTF8 : options);
    const started = tally === undefined ? 0 : performance.now();
    try {
      void (target ?? client).sendCommand(command);
    } catch (error) {
      command.reject(error as Error);
    }
    if (!command.isSettled) deadlines.track(command);
    return (command.promise as Promise<R>).then(
      (reply) => {
        if (tally !== undefined) observe(tally, performance.now() - started);
        return transform === undefined ? (reply as unknown as T) : transform(reply);
      },
      (error: unknown) => {
        if (tally !== undefined) observe(tally, performance.now() - started);
        return rethrow(error);
      },
    );
  }

  return {
    fail,
    stop: () => deadlines.stop(),
    run: (tally, name, args, transform, target) => {
      if (connection.ready) return send(tally, name, args, transform, target);
      return connection.whenReady().then(() => send(tally, name, args, transform, target), rethrow);
    },
  };
}

/**
 * What the read-only view and the owned keyspaces share: the command
 * connection and the one function every command goes through.
 */
export interface Core extends Runner {
  readonly connection: Connection;
  readonly cluster: boolean;
  readonly keyPrefix: string;
  readonly instruments: RedisInstruments | undefined;
  /** A RedisError for arguments refused before sending; counted. */
  invalid(message: string): Promise<never>;
  /**
   * Runs a multi-key command once per Cluster slot its keys hash to (Redis
   * Cluster refuses CROSSSLOT), on a standalone server once; returns the
   * replies with the key positions of each.
   */
  perSlot<R>(
    keys: readonly string[],
    send: (keys: string[]) => Promise<R>,
  ): Promise<{ positions: number[]; reply: R }[]>;
}

export function createCore(
  connection: Connection,
  keyPrefix: string,
  instruments: RedisInstruments | undefined,
  timeoutMs: number,
): Core {
  const cluster = 'isCluster' in connection.client && connection.client.isCluster;
  const runner = createRunner(connection, instruments, timeoutMs);

  return {
    ...runner,
    connection,
    cluster,
    keyPrefix,
    instruments,
    invalid(message) {
      return Promise.reject(runner.fail(new RedisError('INVALID_ARGUMENT', message)));
    },
    async perSlot(keys, send) {
      const groups = cluster ? groupBySlot(keys, keyPrefix) : [keys.map((_key, index) => index)];
      if (groups.length === 1) {
        return [{ positions: groups[0] ?? [], reply: await send([...keys]) }];
      }
      return Promise.all(
        groups.map(async (positions) => ({
          positions,
          reply: await send(positions.map((index) => keys[index] as string)),
        })),
      );
    },
  };
}
