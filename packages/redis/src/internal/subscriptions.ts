import type { Logger } from '@flowforge/observability';
import type { Redis as IORedis } from 'ioredis';
import type { Connection } from './connection.js';
import { createRunner, type Runner } from './core.js';
import type { RedisInstruments } from './metrics.js';

/** Gets each message of a channel: `(message, channel)`, plus the matching pattern for psubscribe. */
export type MessageListener = (message: string, channel: string, pattern?: string) => void;

type Kind = 'channel' | 'pattern';

/**
 * The pub/sub side of a handle: one dedicated connection (a subscribed
 * connection takes no other commands under RESP2), opened on the first
 * subscribe. Any number of listeners share it; SUBSCRIBE goes out for a
 * channel's first listener, UNSUBSCRIBE after its last one left. ioredis
 * subscribes again by itself after a reconnect.
 */
export class Subscriptions {
  readonly #open: () => Connection;
  readonly #instruments: RedisInstruments | undefined;
  readonly #logger: Logger | undefined;
  readonly #listeners: Record<Kind, Map<string, Set<MessageListener>>> = {
    channel: new Map(),
    pattern: new Map(),
  };
  readonly #pending = new Map<string, Promise<unknown>>();
  readonly #timeoutMs: number;
  #connection: { connection: Connection; runner: Runner } | undefined;

  constructor(
    open: () => Connection,
    instruments: RedisInstruments | undefined,
    logger: Logger | undefined,
    timeoutMs: number,
  ) {
    this.#open = open;
    this.#instruments = instruments;
    this.#logger = logger;
    this.#timeoutMs = timeoutMs;
  }

  async add(
    kind: Kind,
    names: readonly string[],
    listener: MessageListener,
  ): Promise<() => Promise<void>> {
    const { runner } = this.#connect();
    const registry = this.#listeners[kind];
    const unique = [...new Set(names)];
    const fresh = unique.filter((name) => !registry.has(name));
    for (const name of unique) {
      let set = registry.get(name);
      if (!set) {
        set = new Set();
        registry.set(name, set);
      }
      set.add(listener);
    }
    const waits = unique
      .map((name) => this.#pending.get(`${kind}:${name}`))
      .filter((pending) => pending !== undefined);
    try {
      if (fresh.length > 0) {
        const tally = this.#instruments?.tally(kind === 'channel' ? 'subscribe' : 'psubscribe');
        const sent = runner.run(tally, kind === 'channel' ? 'subscribe' : 'psubscribe', fresh);
        for (const name of fresh) this.#pending.set(`${kind}:${name}`, sent);
        try {
          await sent;
        } finally {
          for (const name of fresh) {
            if (this.#pending.get(`${kind}:${name}`) === sent)
              this.#pending.delete(`${kind}:${name}`);
          }
        }
      }
      await Promise.all(waits);
    } catch (error) {
      this.#forget(kind, unique, listener);
      throw error;
    }
    let active = true;
    return async () => {
      if (!active) return;
      active = false;
      const emptied = this.#forget(kind, unique, listener);
      if (emptied.length === 0 || !this.#connection?.connection.ready) return;
      const tally = this.#instruments?.tally(kind === 'channel' ? 'unsubscribe' : 'punsubscribe');
      // Best effort: the listener is gone either way, and a message for a
      // channel without listeners is dropped.
      await runner
        .run(tally, kind === 'channel' ? 'unsubscribe' : 'punsubscribe', emptied)
        .catch(() => undefined);
    };
  }

  async close(): Promise<void> {
    this.#listeners.channel.clear();
    this.#listeners.pattern.clear();
    this.#connection?.runner.stop();
    await this.#connection?.connection.close();
  }

  /** Removes `listener` from `names`; returns the names left without listeners. */
  #forget(kind: Kind, names: readonly string[], listener: MessageListener): string[] {
    const registry = this.#listeners[kind];
    const emptied: string[] = [];
    for (const name of names) {
      const set = registry.get(name);
      if (!set) continue;
      set.delete(listener);
      if (set.size === 0) {
        registry.delete(name);
        if (!this.#pending.has(`${kind}:${name}`)) emptied.push(name);
      }
    }
    return emptied;
  }

  #connect(): { runner: Runner } {
    if (this.#connection) return this.#connection;
    const connection = this.#open();
    const client = connection.client as unknown as IORedis;
    client.on('message', (channel: string, message: string) => {
      this.#deliver(this.#listeners.channel.get(channel), message, channel, undefined);
    });
    client.on('pmessage', (pattern: string, channel: string, message: string) => {
      this.#deliver(this.#listeners.pattern.get(pattern), message, channel, pattern);
    });
    this.#connection = {
      connection,
      runner: createRunner(connection, this.#instruments, this.#timeoutMs),
    };
    return this.#connection;
  }

  #deliver(
    listeners: Set<MessageListener> | undefined,
    message: string,
    channel: string,
    pattern: string | undefined,
  ): void {
    if (!listeners) return;
    for (const listener of listeners) {
      try {
        if (pattern === undefined) listener(message, channel);
        else listener(message, channel, pattern);
      } catch (error) {
        this.#logger?.error({ err: error, channel }, 'redis message listener threw');
      }
    }
  }
}
