// A process of bench/live's SSE viewers (viewer.ts), on raw sockets, so that their parsing
// shares neither the event loop nor the RSS of the server measured. Controlled over IPC:
//   → { op: 'ready' }
//   { op: 'connect', port, first, count, widgets } → { op: 'connected', … }   viewers first…first+count-1, of widget id % widgets
//   { op: 'window', on: true } → { op: 'window-started' }
//   { op: 'window', on: false } → { op: 'window-ended', delays, … }            delays recorded in between
//   { op: 'bounce', fraction, withinMs } → { op: 'bouncing', viewers }         that share of the viewers disconnect once, at random moments
//   { op: 'settle', upper, timeoutMs } → { op: 'settled', … }                  waits until every viewer has progress ≥ upper
//   { op: 'check', widgets } → { op: 'checked', … }                            each viewer's state against its widget's rows
//   { op: 'stop' }                                                              closes every socket and exits
import process from 'node:process';
import { onParentMessage, sendToParent } from '../lib/ipc.ts';
import { sleep } from '../lib/harness.ts';
import {
  DelayHistogram,
  Viewer,
  noCounters,
  type ConnectOutcome,
  type ViewerContext,
  type ViewerCounters,
} from './viewer.ts';

/** What run.ts sends. */
export type ClientsCommand =
  | { op: 'connect'; port: number; first: number; count: number; widgets: number }
  | { op: 'window'; on: boolean }
  | { op: 'bounce'; fraction: number; withinMs: number }
  | { op: 'settle'; upper: string; timeoutMs: number }
  | { op: 'check'; widgets: string[][] }
  | { op: 'stop' };

/** A viewer whose state is not the view's, for the report. */
export interface Mismatch {
  viewer: number;
  widget: number;
  /** Rows of the view it lacks, rows it has that the view does not, rows it has more than once. */
  missing: number;
  extra: number;
  duplicated: number;
}

/** What this process answers. */
export type ClientsReply =
  | { op: 'ready' }
  | {
      op: 'connected';
      outcomes: Record<ConnectOutcome, number>;
      counters: ViewerCounters;
      rss: number;
    }
  | { op: 'window-started' }
  | {
      op: 'window-ended';
      /** [ms, count] of commit-to-client delays recorded in the window. */
      delays: [number, number][];
      counters: ViewerCounters;
      rss: number;
    }
  | { op: 'bouncing'; viewers: number }
  | {
      op: 'settled';
      /** Viewers that had a stream, and those of them at progress ≥ upper. */
      viewers: number;
      settled: number;
      counters: ViewerCounters;
    }
  | { op: 'checked'; checked: number; mismatches: number; examples: Mismatch[] };

/** In-flight initial connections: the server's accept queue is finite (listen backlog). */
const CONNECT_CONCURRENCY = 200;

const context: ViewerContext = {
  port: 0,
  counters: noCounters(),
  delays: new DelayHistogram(),
  recording: false,
  keepConnected: false,
  connectTimeoutMs: 30_000,
};
const viewers: Viewer[] = [];

async function connect(first: number, count: number, widgets: number) {
  const outcomes: Record<ConnectOutcome, number> = {
    ready: 0,
    refused: 0,
    error: 0,
    closed: 0,
    timeout: 0,
  };
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const id = first + next;
      next += 1;
      const viewer = new Viewer(id, id % widgets, context);
      viewers.push(viewer);
      outcomes[await viewer.connect()] += 1;
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONNECT_CONCURRENCY, count) }, worker));
  context.keepConnected = true;
  return outcomes;
}

function bounce(fraction: number, withinMs: number): number {
  const chosen = viewers.filter((viewer) => viewer.everConnected && Math.random() < fraction);
  for (const viewer of chosen) {
    // A disconnect at a random moment of the window, back after 0.1–1 s (a reload, a flaky network).
    setTimeout(() => viewer.bounce(100 + Math.random() * 900), Math.random() * withinMs);
  }
  return chosen.length;
}

async function settle(upper: bigint, timeoutMs: number) {
  const connected = viewers.filter((viewer) => viewer.everConnected);
  const isSettled = (viewer: Viewer): boolean =>
    viewer.live && viewer.lastProgress !== undefined && BigInt(viewer.lastProgress) >= upper;
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && !connected.every(isSettled)) await sleep(100);
  return { viewers: connected.length, settled: connected.filter(isSettled).length };
}

function check(widgets: readonly (readonly string[])[]) {
  let checked = 0;
  const examples: Mismatch[] = [];
  let mismatches = 0;
  for (const viewer of viewers) {
    if (!viewer.everConnected) continue;
    checked += 1;
    const expected = new Set(widgets[viewer.widget] ?? []);
    let missing = 0;
    let extra = 0;
    let duplicated = 0;
    for (const key of expected) if (!viewer.state.has(key)) missing += 1;
    for (const [key, count] of viewer.state) {
      if (!expected.has(key)) extra += 1;
      else if (count !== 1) duplicated += 1;
    }
    if (missing + extra + duplicated > 0) {
      mismatches += 1;
      if (examples.length < 5)
        examples.push({ viewer: viewer.id, widget: viewer.widget, missing, extra, duplicated });
    }
  }
  return { checked, mismatches, examples };
}

onParentMessage<ClientsCommand>((message) => {
  switch (message.op) {
    case 'connect':
      context.port = message.port;
      void connect(message.first, message.count, message.widgets).then((outcomes) =>
        sendToParent<ClientsReply>({
          op: 'connected',
          outcomes,
          counters: context.counters,
          rss: process.memoryUsage().rss,
        }),
      );
      break;
    case 'window':
      context.recording = message.on;
      sendToParent<ClientsReply>(
        message.on
          ? { op: 'window-started' }
          : {
              op: 'window-ended',
              delays: context.delays.entries(),
              counters: context.counters,
              rss: process.memoryUsage().rss,
            },
      );
      break;
    case 'bounce':
      sendToParent<ClientsReply>({
        op: 'bouncing',
        viewers: bounce(message.fraction, message.withinMs),
      });
      break;
    case 'settle':
      void settle(BigInt(message.upper), message.timeoutMs).then((settled) =>
        sendToParent<ClientsReply>({ op: 'settled', ...settled, counters: context.counters }),
      );
      break;
    case 'check':
      sendToParent<ClientsReply>({ op: 'checked', ...check(message.widgets) });
      break;
    case 'stop':
      context.keepConnected = false;
      for (const viewer of viewers) viewer.close();
      process.exit(0);
  }
});
process.on('disconnect', () => process.exit(0));
sendToParent<ClientsReply>({ op: 'ready' });
