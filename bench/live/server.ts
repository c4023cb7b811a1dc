// The SSE server of bench/live: one Fastify instance serving GET /w/:i/stream (widget i of
// live_rows) through @flowforge/server's event streams, in one of two designs:
//   per-viewer  each request runs its own materialize.subscribe() on its own pooled
//               connection (apps/sample-api's widget-stream route today)
//   shared      one createSharedSubscriptions() hub; each request watches it, and each item
//               the hub yields (the same object to every viewer) is encoded once
// Usage (forked by run.ts with an IPC channel):
//   node live/server.ts --design shared --url postgres://… --viewers N --widgets M [--window-size W]
//   → { op: 'ready', port }
//   { op: 'memory' } → { op: 'memory', … }   after two full GCs
//   { op: 'stats' } → { op: 'stats', … }     streams, refusals, warnings, the hub's stats
//   { op: 'stop' }                           closes everything and exits
import process from 'node:process';
import { parseArgs } from 'node:util';
import v8 from 'node:v8';
import vm from 'node:vm';
import Fastify from 'fastify';
import {
  createMaterialize,
  createSharedSubscriptions,
  isMaterializeError,
  liveEventOf,
  type Materialize,
} from '@flowforge/materialize';
import { createLogger } from '@flowforge/observability';
import {
  createEventStreams,
  createProblems,
  lastEventIdOf,
  problemBody,
  PROBLEM_CONTENT_TYPE,
  type ServerSentEvent,
} from '@flowforge/server';
import { sendEventStream } from '@flowforge/server/fastify';
import { onParentMessage, sendToParent } from '../lib/ipc.ts';
import { DESIGNS, LIVE_VIEW, type Design, type LiveRow } from './common.ts';

/** What run.ts sends. */
export type ServerCommand = { op: 'memory' } | { op: 'stats' } | { op: 'stop' };

/** The shared hub's counts (`shared.stats`). */
interface HubStats {
  subscriptions: number;
  catchUps: number;
  viewers: number;
}

/** What this process answers. */
export type ServerReply =
  | { op: 'ready'; port: number }
  | { op: 'memory'; rss: number; heapUsed: number; external: number; arrayBuffers: number }
  | {
      op: 'stats';
      /** Event streams open now. */
      streams: number;
      /** Requests answered with a problem, by error code. */
      refusals: Record<string, number>;
      /** Warning and error lines logged (event streams that failed, …), and the first few. */
      warnings: number;
      firstWarnings: string[];
      /** The shared hub's stats now and the most of each seen (sampled every 100 ms); null in per-viewer. */
      hub: { now: HubStats; peak: HubStats } | null;
    };

const { values: flags } = parseArgs({
  options: {
    design: { type: 'string' },
    url: { type: 'string' },
    viewers: { type: 'string' },
    widgets: { type: 'string' },
    'window-size': { type: 'string' },
  },
});
if (!DESIGNS.some((design) => design === flags.design)) {
  throw new Error(`--design must be one of ${DESIGNS.join(', ')}`);
}
const design = flags.design as Design;
const url = flags.url ?? '';
const viewers = Number(flags.viewers);
const widgets = Number(flags.widgets);
const windowSize = flags['window-size'] === undefined ? undefined : Number(flags['window-size']);

// A full GC before each RSS reading, without asking run.ts to start this process with --expose-gc.
v8.setFlagsFromString('--expose-gc');
const collectGarbage = vm.runInNewContext('gc') as () => void;

// Warnings and errors are counted (and the first few kept), not printed: at 10,000 viewers a
// failure mode would flood the terminal.
let warnings = 0;
const firstWarnings: string[] = [];
const logger = createLogger({
  level: 'warn',
  format: 'json',
  service: 'bench-live',
  destination: {
    write(line: string) {
      warnings += 1;
      if (firstWarnings.length < 5) firstWarnings.push(line.trim());
    },
  },
});

// Each viewer is its own client, and no tenant is passed: the limits are the process's alone,
// set above what the bench opens (reconnects briefly hold two).
const streams = createEventStreams({
  logger,
  maxStreams: viewers * 2 + 100,
  maxStreamsPerClient: 4,
  maxStreamsPerTenant: viewers * 2 + 100,
});

// per-viewer: a connection per viewer (the pool is the limit of this design); shared: one per
// distinct SUBSCRIBE, with room for a catch-up SUBSCRIBE per widget.
const maxSubscriptions = widgets * 2;
const materialize = createMaterialize({
  url,
  name: design,
  poolSize: design === 'per-viewer' ? viewers : maxSubscriptions,
  logger,
});
await materialize.start();
const shared =
  design === 'shared'
    ? createSharedSubscriptions(materialize, {
        maxSubscriptions,
        logger,
        ...(windowSize === undefined ? {} : { windowSize }),
      })
    : undefined;

const peakHub: HubStats = { subscriptions: 0, catchUps: 0, viewers: 0 };
if (shared !== undefined) {
  setInterval(() => {
    const { subscriptions, catchUps, viewers: watching } = shared.stats;
    peakHub.subscriptions = Math.max(peakHub.subscriptions, subscriptions);
    peakHub.catchUps = Math.max(peakHub.catchUps, catchUps);
    peakHub.viewers = Math.max(peakHub.viewers, watching);
  }, 100).unref();
}

/** Progress ids are Materialize timestamps (u64); resuming needs one after the first. */
function resumePointOf(lastEventId: string | undefined): bigint | undefined {
  if (lastEventId === undefined) return undefined;
  if (!/^[0-9]{1,20}$/.test(lastEventId)) throw new Error('Last-Event-ID is not a timestamp');
  const frontier = BigInt(lastEventId);
  if (frontier < 1n || frontier >= 2n ** 64n) throw new Error('Last-Event-ID is out of range');
  return frontier;
}

/** per-viewer: the widget's changes through a SUBSCRIBE of this request's own. */
async function* perViewerEvents(
  mz: Materialize,
  widget: number,
  resumeFrom: bigint | undefined,
  signal: AbortSignal,
): AsyncGenerator<ServerSentEvent> {
  const changes = mz.subscribe<LiveRow>(LIVE_VIEW, {
    filter: { widget },
    progress: true,
    signal,
    ...(resumeFrom === undefined ? { snapshot: true } : { resumeFrom }),
  });
  for await (const change of changes) yield liveEventOf(change);
}

/** shared: the hub yields the same item object to every viewer, so liveEventOf encodes each once. */
async function* sharedEvents(
  hub: NonNullable<typeof shared>,
  widget: number,
  resumeFrom: bigint | undefined,
  signal: AbortSignal,
): AsyncGenerator<ServerSentEvent> {
  const feed = hub.watch<LiveRow>(LIVE_VIEW, {
    filter: { widget },
    signal,
    ...(resumeFrom === undefined ? {} : { resumeFrom }),
  });
  for await (const item of feed) yield liveEventOf(item);
}

const refusals: Record<string, number> = {};
const problems = createProblems();
const app = Fastify();
app.setErrorHandler((error, request, reply) => {
  const code =
    typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : 'other';
  refusals[code] = (refusals[code] ?? 0) + 1;
  const { problem, headers } = problems.answer(error);
  return reply
    .code(problem.status)
    .headers(headers)
    .type(PROBLEM_CONTENT_TYPE)
    .send(problemBody(request.id, problem));
});

app.get<{ Params: { i: string } }>('/w/:i/stream', async (request, reply) => {
  const widget = Number(request.params.i);
  const viewer = request.headers['x-viewer'];
  const clientId = typeof viewer === 'string' ? viewer : request.ip;
  const resumeFrom = resumePointOf(lastEventIdOf(request.headers));
  const send = (from: bigint | undefined, preamble: readonly ServerSentEvent[] = []) =>
    sendEventStream(request, reply, streams, {
      clientId,
      preamble,
      source: (signal) =>
        shared === undefined
          ? perViewerEvents(materialize, widget, from, signal)
          : sharedEvents(shared, widget, from, signal),
    });
  if (shared !== undefined || resumeFrom === undefined) return send(resumeFrom);
  // per-viewer, as apps/sample-api: a resume point Materialize no longer has gets `reset` and
  // a fresh snapshot (the hub sends its own reset item).
  try {
    return await send(resumeFrom);
  } catch (error) {
    if (!isMaterializeError(error, 'HISTORY_UNAVAILABLE')) throw error;
  }
  return send(undefined, [liveEventOf({ kind: 'reset' })]);
});

await app.listen({ host: '127.0.0.1', port: 0, backlog: 4096 });
const address = app.server.address();
if (address === null || typeof address === 'string') throw new Error('not listening on TCP');

async function stop(): Promise<void> {
  await streams.stop(AbortSignal.timeout(5_000));
  await app.close();
  await shared?.close();
  await materialize.close();
}

onParentMessage<ServerCommand>((message) => {
  switch (message.op) {
    case 'memory': {
      collectGarbage();
      collectGarbage();
      const { rss, heapUsed, external, arrayBuffers } = process.memoryUsage();
      sendToParent<ServerReply>({ op: 'memory', rss, heapUsed, external, arrayBuffers });
      break;
    }
    case 'stats':
      sendToParent<ServerReply>({
        op: 'stats',
        streams: streams.size,
        refusals: { ...refusals },
        warnings,
        firstWarnings,
        hub: shared === undefined ? null : { now: { ...shared.stats }, peak: { ...peakHub } },
      });
      break;
    case 'stop':
      stop().then(
        () => process.exit(0),
        (error: unknown) => {
          console.error(error);
          process.exit(1);
        },
      );
      break;
  }
});
process.on('disconnect', () => process.exit(0));
sendToParent<ServerReply>({ op: 'ready', port: address.port });
