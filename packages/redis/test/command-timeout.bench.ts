/**
 * How commands time out, for pipelined GETs against the shared redis-server
 * (127.0.0.1:6379), each mode on a connection built as the handle builds it:
 *
 * - `handle`: the handle's runner (core.ts): one sweep timer per connection
 *   rejects late commands; the reply is timed and errors mapped in a `.then`;
 * - `commandTimeout`: ioredis's public option instead (a timer armed and
 *   cleared per command), with the same `.then`;
 * - `no-timeout`: the same `.then` and no timeout at all: the floor.
 *
 * Run by hand, never in `pnpm test`:
 *
 *   pnpm --filter @flowforge/redis exec vitest bench --run test/command-timeout.bench.ts
 *
 * Three rounds; in each, every mode runs in twenty 150 ms slices interleaved
 * with the other modes' (the order rotated), because the VM's speed drifts
 * within seconds. Compare the ratios of one run, never ops/s between runs.
 * Printed: per round, each mode's GETs/s and Node CPU per GET, each as a
 * ratio to `handle`, and the median ratio over the rounds.
 */
import { randomBytes } from 'node:crypto';
import { createMetrics } from '@flowforge/observability';
import { Command } from 'ioredis';
import { afterAll, beforeAll, test } from 'vitest';
import type { Connection } from '../src/internal/connection.js';
import { createRunner, type Runner } from '../src/internal/core.js';
import { createRedisInstruments, observe } from '../src/internal/metrics.js';
import { commandConnection, deletePrefix, SHARED_PORT, writerFor } from './support/handles.js';

/** GETs in flight at once: sent back to back, so ioredis pipelines them on the socket. */
const PIPELINED = 100;
const KEYS = 1_000;
const ROUNDS = 3;
/** Each mode's share of a round, cut into slices interleaved with the other modes'. */
const SLICES = 20;
const SLICE_MS = 150;
const WARMUP_MS = 500;
const TIMEOUT_MS = 2_000;
const PREFIX = `ff:bench:timeout:${randomBytes(4).toString('hex')}:`;
const keys = Array.from({ length: KEYS }, (_unused, index) => `${PREFIX}${index}`);
const value = 'v'.repeat(100);

type Mode = 'handle' | 'commandTimeout' | 'no-timeout';
const MODES: readonly Mode[] = ['handle', 'commandTimeout', 'no-timeout'];

/** A GET as each mode sends it. */
type Get = (key: string) => Promise<unknown>;

const writer = writerFor(SHARED_PORT);
const connections: Connection[] = [];
const runners: Runner[] = [];
const gets = new Map<Mode, Get>();

/** A command connection as the handle builds it, with or without ioredis's commandTimeout. */
function connect(name: string, commandTimeout?: number): Connection {
  const connection = commandConnection(
    name,
    commandTimeout === undefined ? {} : { commandTimeout },
  );
  connections.push(connection);
  return connection;
}

/**
 * What core.ts's `send` does, without its sweep: a plain Command, the
 * duration and the error mapping in a `.then`; the timeout, if any, is the
 * connection's `commandTimeout`.
 */
function publicGet(connection: Connection, name: string): Get {
  const metrics = createMetrics({ defaultMetrics: false });
  const instruments = createRedisInstruments(metrics, name, () => connection.ready);
  const tally = instruments.tally('get');
  const options = { replyEncoding: 'utf8' as const };
  const fail = (error: unknown): never => {
    const mapped = connection.error(error);
    instruments.error(mapped.code);
    throw mapped;
  };
  return (key) => {
    const command = new Command('get', [key], options);
    const started = performance.now();
    void connection.client.sendCommand(command);
    return command.promise.then(
      (reply: unknown) => {
        observe(tally, performance.now() - started);
        return reply;
      },
      (error: unknown) => {
        observe(tally, performance.now() - started);
        return fail(error);
      },
    );
  };
}

/** A GET through the handle's own runner (core.ts), sweep included. */
function handleGet(connection: Connection, name: string): Get {
  const metrics = createMetrics({ defaultMetrics: false });
  const instruments = createRedisInstruments(metrics, name, () => connection.ready);
  const runner = createRunner(connection, instruments, TIMEOUT_MS);
  runners.push(runner);
  const tally = instruments.tally('get');
  return (key) => runner.run(tally, 'get', [key]);
}

/** What one slice of one mode did. */
interface Tally {
  gets: number;
  wallMs: number;
  /** Node's CPU, user + system. */
  cpuMicros: number;
}

let next = 0;

/** PIPELINED GETs at once, again and again for `ms`; every reply checked. */
async function drive(get: Get, ms: number, tally: Tally): Promise<void> {
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const until = started + ms;
  const replies: Promise<unknown>[] = new Array<Promise<unknown>>(PIPELINED);
  while (performance.now() < until) {
    for (let index = 0; index < PIPELINED; index += 1) {
      replies[index] = get(keys[(next + index) % KEYS]!);
    }
    next = (next + PIPELINED) % KEYS;
    const values = await Promise.all(replies);
    // A wrong reply voids the run.
    for (const reply of values)
      if (reply !== value) throw new Error(`unexpected reply ${String(reply)}`);
    tally.gets += PIPELINED;
  }
  tally.wallMs += performance.now() - started;
  const cpu = process.cpuUsage(cpuBefore);
  tally.cpuMicros += cpu.user + cpu.system;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

beforeAll(async () => {
  await writer.connect();
  for (let index = 0; index < KEYS; index += 500) {
    const pairs = keys.slice(index, index + 500).flatMap((key) => [key, value]);
    await writer.mset(...pairs);
  }
  gets.set('handle', handleGet(connect('bench-handle'), 'bench-handle'));
  gets.set('commandTimeout', publicGet(connect('bench-public', TIMEOUT_MS), 'bench-public'));
  gets.set('no-timeout', publicGet(connect('bench-none'), 'bench-none'));
  for (const connection of connections) await connection.whenReady();
});

afterAll(async () => {
  for (const runner of runners) runner.stop();
  await Promise.all(connections.map((connection) => connection.close()));
  await deletePrefix(writer, PREFIX);
  writer.disconnect();
});

test(`${PIPELINED} pipelined GETs: ${ROUNDS} rounds, modes alternating`, async () => {
  for (const mode of MODES)
    await drive(gets.get(mode)!, WARMUP_MS, { gets: 0, wallMs: 0, cpuMicros: 0 });
  const rounds: Map<Mode, Tally>[] = [];
  for (let round = 0; round < ROUNDS; round += 1) {
    const tallies = new Map(MODES.map((mode) => [mode, { gets: 0, wallMs: 0, cpuMicros: 0 }]));
    for (let slice = 0; slice < SLICES; slice += 1) {
      // Rotated each slice, so no mode always runs first (or right after another).
      for (let offset = 0; offset < MODES.length; offset += 1) {
        const mode = MODES[(slice + round + offset) % MODES.length]!;
        await drive(gets.get(mode)!, SLICE_MS, tallies.get(mode)!);
      }
    }
    rounds.push(tallies);
  }

  const lines = [
    '',
    `${PIPELINED} pipelined GETs on 127.0.0.1:${SHARED_PORT}, ${ROUNDS} rounds of ${SLICES} × ${SLICE_MS} ms per mode`,
    'round  mode               ops/s   ratio  CPU µs/GET  CPU ratio (handle ÷ mode)',
  ];
  const ratios = new Map<Mode, { ops: number[]; cpu: number[] }>(
    MODES.map((mode) => [mode, { ops: [], cpu: [] }]),
  );
  rounds.forEach((tallies, round) => {
    const base = tallies.get('handle')!;
    const baseOps = base.gets / base.wallMs;
    const baseCpu = base.cpuMicros / base.gets;
    for (const mode of MODES) {
      const tally = tallies.get(mode)!;
      const ops = tally.gets / tally.wallMs;
      const cpu = tally.cpuMicros / tally.gets;
      ratios.get(mode)!.ops.push(ops / baseOps);
      ratios.get(mode)!.cpu.push(baseCpu / cpu);
      lines.push(
        `${String(round + 1).padEnd(7)}${mode.padEnd(16)}${Math.round(ops * 1000)
          .toString()
          .padStart(
            8,
          )}  ${(ops / baseOps).toFixed(2)}×  ${cpu.toFixed(2).padStart(10)}  ${(baseCpu / cpu).toFixed(2)}×`,
      );
    }
  });
  lines.push('median ratio over the rounds (ops/s; CPU):');
  for (const mode of MODES) {
    const { ops, cpu } = ratios.get(mode)!;
    lines.push(
      `  ${mode.padEnd(16)} ${median(ops).toFixed(2)}× (${ops.map((r) => r.toFixed(2)).join(', ')}); ` +
        `${median(cpu).toFixed(2)}× (${cpu.map((r) => r.toFixed(2)).join(', ')})`,
    );
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}, 600_000);
