/**
 * A `CounterStore` over the real Redis of `scripts/services`, for the throttle's tests.
 *
 * @flowforge/auth may not depend on @flowforge/redis (DESIGN.md's leaf rule), so its tests
 * speak RESP over node:net: the few commands `OwnedKeyspace` sends for a counter (GET,
 * SET PX NX, INCRBY, PEXPIRE, PTTL, DEL), with its rules: every key under the prefix, a
 * deadline per command (as REDIS_COMMAND_TIMEOUT_MS), no queue while disconnected.
 *
 * Plain support code: no vitest imports.
 */
import { connect, type Socket } from 'node:net';
import type { CounterSetOptions, CounterStore } from '../../src/index.js';

/** The port of the Redis `scripts/services` runs. */
export const REDIS_PORT = 6379;

type Reply = string | number | null | Reply[];

/** A counter store on `127.0.0.1:port`, and a way to read a key's TTL and close the socket. */
export interface RedisCounterStore extends CounterStore {
  /** Commands sent so far (successful or not). */
  readonly commands: () => number;
  /** Sends any command (for assertions: `PTTL`, `KEYS`, `DEL`). */
  send(...args: (string | number)[]): Promise<Reply>;
  close(): void;
}

/** A minimal RESP2 parser: the replies these commands give (status, error, integer, bulk, array). */
function parseReply(buffer: Buffer, start: number): { value: Reply | Error; end: number } | null {
  const lineEnd = buffer.indexOf('\r\n', start);
  if (lineEnd === -1) return null;
  const type = String.fromCharCode(buffer[start]!);
  const line = buffer.toString('utf8', start + 1, lineEnd);
  const next = lineEnd + 2;
  switch (type) {
    case '+':
      return { value: line, end: next };
    case '-':
      return { value: new Error(line), end: next };
    case ':':
      return { value: Number(line), end: next };
    case '$': {
      const length = Number(line);
      if (length === -1) return { value: null, end: next };
      if (buffer.length < next + length + 2) return null;
      return { value: buffer.toString('utf8', next, next + length), end: next + length + 2 };
    }
    case '*': {
      const count = Number(line);
      if (count === -1) return { value: null, end: next };
      const items: Reply[] = [];
      let at = next;
      for (let i = 0; i < count; i += 1) {
        const item = parseReply(buffer, at);
        if (!item) return null;
        if (item.value instanceof Error) return { value: item.value, end: item.end };
        items.push(item.value);
        at = item.end;
      }
      return { value: items, end: at };
    }
    default:
      throw new Error(`unexpected RESP type ${type}`);
  }
}

/** Connects lazily to Redis on `port` (another port: a proxy in front of it). */
export function redisCounterStore(
  prefix: string,
  options: { port?: number; timeoutMs?: number } = {},
): RedisCounterStore {
  const port = options.port ?? REDIS_PORT;
  const timeoutMs = options.timeoutMs ?? 1_000;
  let socket: Socket | undefined;
  let buffered = Buffer.alloc(0);
  const waiting: { resolve: (reply: Reply) => void; reject: (error: Error) => void }[] = [];
  let sent = 0;

  const failAll = (error: Error): void => {
    for (const entry of waiting.splice(0)) entry.reject(error);
  };

  const open = (): Socket => {
    if (socket && !socket.destroyed) return socket;
    buffered = Buffer.alloc(0);
    const next = connect(port, '127.0.0.1');
    next.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      for (;;) {
        const parsed = parseReply(buffered, 0);
        if (!parsed) break;
        buffered = buffered.subarray(parsed.end);
        const entry = waiting.shift();
        if (!entry) continue;
        if (parsed.value instanceof Error) entry.reject(parsed.value);
        else entry.resolve(parsed.value);
      }
    });
    next.on('error', (error) => failAll(error));
    next.on('close', () => failAll(new Error('the Redis connection closed')));
    socket = next;
    return next;
  };

  const send = (...args: (string | number)[]): Promise<Reply> => {
    sent += 1;
    const connection = open();
    const body = args.map((arg) => {
      const text = String(arg);
      return `$${Buffer.byteLength(text)}\r\n${text}\r\n`;
    });
    return new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => {
        // A reply that never comes: drop the connection (its late replies would misalign).
        connection.destroy();
        reject(new Error(`no reply from Redis within ${timeoutMs} ms`));
      }, timeoutMs);
      waiting.push({
        resolve: (reply) => {
          clearTimeout(timer);
          resolve(reply);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      connection.write(`*${args.length}\r\n${body.join('')}`);
    });
  };

  const owned = (key: string): void => {
    if (!key.startsWith(prefix)) throw new Error(`the key is outside the owned prefix ${prefix}`);
  };

  return {
    prefix,
    commands: () => sent,
    send,
    close: () => socket?.destroy(),
    async get(key) {
      owned(key);
      return (await send('GET', key)) as string | null;
    },
    async set(key: string, value: string, setOptions: CounterSetOptions = {}) {
      owned(key);
      const args: (string | number)[] = ['SET', key, value];
      if (setOptions.ttlMs !== undefined) args.push('PX', setOptions.ttlMs);
      if (setOptions.onlyIfAbsent) args.push('NX');
      return (await send(...args)) === 'OK';
    },
    async incr(key, by = 1) {
      owned(key);
      return (await send('INCRBY', key, by)) as number;
    },
    async expire(key, ttlMs) {
      owned(key);
      return (await send('PEXPIRE', key, ttlMs)) === 1;
    },
    async pttl(key) {
      owned(key);
      return (await send('PTTL', key)) as number;
    },
    async del(key) {
      owned(key);
      return (await send('DEL', key)) as number;
    },
  };
}
