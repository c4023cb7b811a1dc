import { NamedHandles } from '@flowforge/kernel';
import type { Metrics, MetricSample } from '@flowforge/observability';
import { RedisError, type RedisErrorCode } from '../errors.js';

const DURATION = 'flowforge_redis_command_duration_seconds';
/** Upper bounds in seconds: Redis answers in well under a millisecond on a LAN. */
export const DURATION_BUCKETS: readonly number[] = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
];

/** The plain tallies of one (client, command) series; read at scrape time. */
export interface CommandTally {
  count: number;
  sum: number;
  /** Observations per bucket, not cumulative; the last slot is +Inf. */
  readonly buckets: Float64Array;
}

/** Records one command that took `ms` milliseconds. */
export function observe(tally: CommandTally, ms: number): void {
  const seconds = ms / 1000;
  tally.count += 1;
  tally.sum += seconds;
  let bucket = 0;
  while (bucket < DURATION_BUCKETS.length && seconds > (DURATION_BUCKETS[bucket] as number)) {
    bucket += 1;
  }
  tally.buckets[bucket] = (tally.buckets[bucket] as number) + 1;
}

/** Everything one named handle reports. It outlives the handle: counters stay monotonic. */
interface ClientState {
  live: boolean;
  readonly commands: Map<string, CommandTally>;
  readonly errors: Map<RedisErrorCode, number>;
  reconnects: number;
  connected: () => boolean;
}

function histogramSamples(client: string, command: string, tally: CommandTally): MetricSample[] {
  const labels = { client, command };
  const samples: MetricSample[] = [];
  let cumulative = 0;
  DURATION_BUCKETS.forEach((bound, index) => {
    cumulative += tally.buckets[index] ?? 0;
    samples.push({
      metricName: `${DURATION}_bucket`,
      labels: { ...labels, le: bound },
      value: cumulative,
    });
  });
  samples.push({
    metricName: `${DURATION}_bucket`,
    labels: { ...labels, le: '+Inf' },
    value: tally.count,
  });
  samples.push({ metricName: `${DURATION}_sum`, labels, value: tally.sum });
  samples.push({ metricName: `${DURATION}_count`, labels, value: tally.count });
  return samples;
}

function declare(metrics: Metrics, clients: ReadonlyMap<string, ClientState>): void {
  metrics.collected({
    name: DURATION,
    help: 'Time from sending a Redis command to its reply (or error), by handle and command (lower-case name).',
    type: 'histogram',
    collect: () =>
      [...clients].flatMap(([client, state]) =>
        [...state.commands]
          .filter(([, tally]) => tally.count > 0)
          .flatMap(([command, tally]) => histogramSamples(client, command, tally)),
      ),
  });
  metrics.collected({
    name: 'redis_errors_total',
    help: 'Redis calls that failed, by handle and RedisError code (UNAVAILABLE, TIMEOUT, WRONG_TYPE, …).',
    type: 'counter',
    collect: () =>
      [...clients].flatMap(([client, state]) =>
        [...state.errors].map(([code, value]) => ({ labels: { client, code }, value })),
      ),
  });
  metrics.collected({
    name: 'redis_connected',
    help: '1 while the command connection of the handle is ready, 0 otherwise.',
    type: 'gauge',
    collect: () =>
      [...clients]
        .filter(([, state]) => state.live)
        .map(([client, state]) => ({ labels: { client }, value: state.connected() ? 1 : 0 })),
  });
  metrics.collected({
    name: 'redis_reconnects_total',
    help: 'Reconnect attempts scheduled after the connection of the handle was lost or refused.',
    type: 'counter',
    collect: () =>
      [...clients].map(([client, state]) => ({ labels: { client }, value: state.reconnects })),
  });
}

/** Which handle reports under which name, per registry; a second live one is INVALID_OPTIONS. */
const handles = new NamedHandles<Metrics, ClientState>({
  declare,
  refuse: (message) => new RedisError('INVALID_OPTIONS', message),
});

/** What the handle records; every method is cheap enough for the command path. */
export interface RedisInstruments {
  /** The tally of `command` (a name from the fixed command lists, never user input). */
  tally(command: string): CommandTally;
  error(code: RedisErrorCode): void;
  reconnect(): void;
  /** Stops reporting the connection gauge of this handle and frees its name. */
  release(): void;
}

/**
 * Declares the metrics on `metrics` (once per registry) and returns the
 * instruments of the handle named `client`.
 * @throws {RedisError} INVALID_OPTIONS when a live handle already reports under that name.
 */
export function createRedisInstruments(
  metrics: Metrics,
  client: string,
  connected: () => boolean,
): RedisInstruments {
  const own = handles.claim(metrics, client, () => ({
    live: false,
    commands: new Map(),
    errors: new Map(),
    reconnects: 0,
    connected,
  }));
  own.connected = connected;
  return {
    tally(command) {
      let tally = own.commands.get(command);
      if (!tally) {
        tally = { count: 0, sum: 0, buckets: new Float64Array(DURATION_BUCKETS.length + 1) };
        own.commands.set(command, tally);
      }
      return tally;
    },
    error(code) {
      own.errors.set(code, (own.errors.get(code) ?? 0) + 1);
    },
    reconnect() {
      own.reconnects += 1;
    },
    release() {
      handles.release(own);
    },
  };
}
