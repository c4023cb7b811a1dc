/**
 * The seam core.ts builds on, against the shared server. The handle times
 * commands out itself, one sweep per connection instead of ioredis's
 * per-command `commandTimeout` timer (test/command-timeout.bench.ts measures
 * why): the sweep reads each sent Command's `isSettled` and settles a late one
 * through its `reject`, exactly as ioredis's own timer does, and relies on
 * ioredis then dropping the reply when it comes, without handing it to the
 * next command. These tests fail on an ioredis that changes any of that.
 */
import { createMetrics } from '@flowforge/observability';
import { Command } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRedisError, type RedisError } from '../src/index.js';
import type { Connection } from '../src/internal/connection.js';
import { createRunner, type Runner } from '../src/internal/core.js';
import {
  createRedisInstruments,
  type CommandTally,
  type RedisInstruments,
} from '../src/internal/metrics.js';
import {
  commandConnection,
  deletePrefix,
  rejectionOf,
  SHARED_PORT,
  uniquePrefix,
  writerFor,
} from './support/handles.js';

const P = uniquePrefix('seam');
const writer = writerFor(SHARED_PORT);
const opened: { connection: Connection; runner: Runner }[] = [];

/** The handle's command connection, runner and instruments, on the shared server. */
function open(name: string, timeoutMs: number) {
  const connection = commandConnection(name, { keyPrefix: P });
  const metrics = createMetrics({ defaultMetrics: false });
  const instruments: RedisInstruments = createRedisInstruments(
    metrics,
    name,
    () => connection.ready,
  );
  const runner = createRunner(connection, instruments, timeoutMs);
  opened.push({ connection, runner });
  return { client: connection.client, connection, runner, instruments };
}

beforeAll(async () => {
  await writer.set(`${P}string`, 'value');
  await writer.hset(`${P}hash`, { field: '1' });
});

afterAll(async () => {
  for (const { runner } of opened) runner.stop();
  await Promise.all(opened.map(({ connection }) => connection.close()));
  await deletePrefix(writer, P);
  writer.disconnect();
});

describe('ioredis Command, as the handle uses it', () => {
  it('has reject, resolve, promise and isSettled, and settles its promise once through them', async () => {
    const answered = new Command('get', ['k'], { replyEncoding: 'utf8' });
    expect(typeof answered.resolve).toBe('function');
    expect(typeof answered.reject).toBe('function');
    expect(answered.promise).toBeInstanceOf(Promise);
    expect(answered.isSettled).toBe(false);
    answered.resolve(Buffer.from('v'));
    expect(answered.isSettled).toBe(true);
    await expect(answered.promise).resolves.toBe('v');

    const failed = new Command('get', ['k']);
    const error = new Error('refused');
    failed.reject(error);
    expect(failed.isSettled).toBe(true);
    // A reply after the rejection (a late one) changes nothing.
    failed.resolve(Buffer.from('late'));
    await expect(failed.promise).rejects.toBe(error);
  });
});

describe('a command of the handle on a real connection', () => {
  it('resolves with the reply as ioredis decodes it, timed once', async () => {
    const { runner, instruments } = open('seam-reply', 2_000);
    const tally: CommandTally = instruments.tally('get');
    await expect(runner.run(tally, 'get', ['string'])).resolves.toBe('value');
    await expect(runner.run(instruments.tally('hgetall'), 'hgetall', ['hash'])).resolves.toEqual({
      field: '1',
    });
    expect(tally.count).toBe(1);
  });

  it('rejects an error reply as a mapped RedisError', async () => {
    const { runner, instruments } = open('seam-error', 2_000);
    const tally = instruments.tally('get');
    const error = await rejectionOf(runner.run(tally, 'get', ['hash']));
    expect(isRedisError(error, 'WRONG_TYPE')).toBe(true);
    expect((error as RedisError).reply).toBe('WRONGTYPE');
    expect(tally.count).toBe(1);
  });

  it('rejects with UNAVAILABLE when ioredis flushes a dropped connection', async () => {
    const { client, runner, instruments } = open('seam-drop', 10_000);
    const tally = instruments.tally('blpop');
    await runner.run(undefined, 'ping', []);
    const pending = runner.run(tally, 'blpop', ['nothing', 5]);
    client.disconnect();
    const error = await rejectionOf(pending);
    expect(isRedisError(error, 'UNAVAILABLE')).toBe(true);
    expect(tally.count).toBe(1);
  });

  it('times out with TIMEOUT from the sweep, keeps the connection, and drops the late reply', async () => {
    const { client, connection, runner, instruments } = open('seam-timeout', 100);
    // The same connection, with a bound that waits out the BLPOP.
    const patient = createRunner(connection, instruments, 5_000);
    opened.push({ connection, runner: patient });
    const tally = instruments.tally('blpop');
    const id = await runner.run(undefined, 'client', ['id']);
    // The server answers BLPOP (null) after 0.5 s; the sweep rejects it after about 100 ms.
    const error = await rejectionOf(runner.run(tally, 'blpop', ['nothing', 0.5]));
    expect(isRedisError(error, 'TIMEOUT')).toBe(true);
    expect(client.status).toBe('ready');
    // Sent behind the BLPOP on the same socket: it must get its own reply, not the late null.
    await expect(patient.run(undefined, 'get', ['string'])).resolves.toBe('value');
    expect(await patient.run(undefined, 'client', ['id'])).toBe(id);
    expect(tally.count).toBe(1);
  });
});
