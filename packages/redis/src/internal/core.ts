import { Command } from 'ioredis';
import { RedisError } from '../errors.js';
import { toRedisError } from './error-map.js';
import type { Client, Connection } from './connection.js';
import { observe, type CommandTally, type RedisInstruments } from './metrics.js';
import { groupBySlot } from './slot.js';

const UTF8 = { replyEncoding: 'utf8' } as const;

/** An argument of a command, as ioredis takes it. */
type Argument = string | number | Buffer;

/**
 * Times out commands with one timer per connection instead of one per command
 * (ioredis's `commandTimeout` arms and clears a timer for every command: about
 * 2 µs of CPU and a fifth of the throughput of a busy client, measured in
 * bench/redis). Commands are tracked in the order they were sent; a sweep every
 * `interval` ms rejects those sent at least `timeoutMs` ago, as ioredis would
 * ("Command timed out"; the reply, when it comes, is dropped). So a command
 * times out after between `timeoutMs` and `timeoutMs + interval` ms.
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

/**
 * A command that times itself and maps its error: ioredis's resolve and reject
 * are kept in fields and replaced by two shared functions (no closure per
 * command). Every settlement after the first is ignored (a reply that comes
 * after a timeout, a flush after a rejection), so each command is observed once.
 */
class TrackedCommand extends Command {
  ffStarted = 0;
  ffTally: CommandTally | undefined = undefined;
  ffFail: (error: unknown) => RedisError = toRedisError;
  ffResolve: (reply: unknown) => void = noop;
  ffReject: (error: Error) => void = noop;
}

function resolveTracked(this: TrackedCommand, reply: unknown): void {
  if (this.isSettled) return;
  if (this.ffTally !== undefined) observe(this.ffTally, performance.now() - this.ffStarted);
  this.ffResolve(reply);
}

function rejectTracked(this: TrackedCommand, error: Error): void {
  if (this.isSettled) return;
  if (this.ffTally !== undefined) observe(this.ffTally, performance.now() - this.ffStarted);
  this.ffReject(this.ffFail(error));
}

function noop(): void {}

/** Sends commands on one connection: the readiness gate, the timeout, timing, error mapping and counting. */
export interface Runner {
  /**
   * Sends `name args` when the connection is ready (waiting only for an
   * attempt in progress), times it under `tally`, maps its error and counts
   * it. `transform` shapes the reply without another promise; `target` sends
   * it to one Cluster node instead of the client.
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
   * The hot path. No promise of its own: the command's resolve and reject are
   * replaced (ioredis always settles a command through these two properties),
   * so the caller awaits ioredis's promise itself, which rejects with the
   * mapped RedisError. A `.then` here would cost a promise and a microtask per
   * command, and closures two allocations (measured in bench/redis).
   */
  function send<T, R>(
    tally: CommandTally | undefined,
    name: string,
    args: readonly Argument[],
    transform: ((reply: R) => T) | undefined,
    target: Client | undefined,
  ): Promise<T> {
    const command = new TrackedCommand(name, args as Argument[], target ? UTF8 : options);
    command.ffTally = tally;
    command.ffFail = fail;
    command.ffResolve = command.resolve;
    command.ffReject = command.reject;
    command.resolve = resolveTracked;
    command.reject = rejectTracked;
    if (tally !== undefined) command.ffStarted = performance.now();
    try {
      void (target ?? client).sendCommand(command);
    } catch (error) {
      command.reject(error as Error);
    }
    if (!command.isSettled) deadlines.track(command);
    const promise = command.promise as Promise<R>;
    return transform === undefined ? (promise as unknown as Promise<T>) : promise.then(transform);
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
