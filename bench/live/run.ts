// N SSE viewers on one server instance watching M widgets of a Materialize view that
// changes K times a second, in two designs in the same run: a SUBSCRIBE (and a pooled
// connection) per viewer, today's, and one shared hub (createSharedSubscriptions) per
// instance. Reports Materialize connections and SUBSCRIBEs held, server RSS per viewer,
// commit-to-client delay p50/p99, errors and refusals, and checks exactly-once across
// random reconnects. Every part is a process of its own: the wire double, the server,
// the viewers. See README.md.
//
// Usage: node live/run.ts [--viewers 10000] [--widgets 10] [--commits-per-second 10]
//                         [--seconds 30] [--designs per-viewer,shared] [--disconnect-fraction 0.1]
//                         [--per-viewer-viewers 100] [--client-processes 1] [--help]
import { readdir, readFile } from 'node:fs/promises';
import os from 'node:os';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  machineLoad,
  pidOf,
  positiveFlag,
  printTable,
  processCpu,
  sleep,
  tearDownOnSignals,
  writeResults,
} from '../lib/harness.ts';
import { forkWithIpc, type Forked } from '../lib/ipc.ts';
import type { ClientsCommand, ClientsReply, Mismatch } from './clients.ts';
import { DESIGNS, type Design } from './common.ts';
import type { DoubleCommand, DoubleReply } from './double-process.ts';
import type { ServerCommand, ServerReply } from './server.ts';
import { noCounters, type ViewerCounters } from './viewer.ts';

const RESULTS = fileURLToPath(new URL('./results.json', import.meta.url));
const TARGETS = {
  viewers: 10_000,
  widgets: 10,
  commitsPerSecond: 10,
  rssPerViewer: 20 * 1024,
  p99: 100,
};
/** Seconds between the last viewer connected and the RSS reading (and the window). */
const SETTLE_SECONDS = 2;

const USAGE = `Usage: node bench/live/run.ts [options]

Per design: the Materialize wire double (one view, live_rows; a commit every
1000/K ms changes one row of a random widget), a Fastify server with
@flowforge/server's event streams serving GET /w/:i/stream, and the viewers (raw
sockets, each its own client id, viewer v watches widget v % M), each in a
process of its own. Viewers connect; the server's RSS is read after a GC before
and after; then a steady window of --seconds, during which a fraction of the
viewers disconnect once at a random moment and reconnect 0.1–1 s later with
Last-Event-ID. Then the commits stop, every viewer must reach the last progress
and hold exactly the view's rows of its widget. Exits 1 on any mismatch.

Options:
  --viewers N               viewers of the shared design                          (10000)
  --per-viewer-viewers N    viewers of the per-viewer design (its pool size, ≤ 1000) (100)
  --widgets M               widgets (distinct filters) of the view                (10)
  --rows-per-widget R       rows of each widget                                   (10)
  --commits-per-second K    commits to the view per second                        (10)
  --seconds S               the steady window                                     (30)
  --designs LIST            comma-separated: ${DESIGNS.join(', ')}                (both)
  --disconnect-fraction F   share of the viewers that disconnect once and resume  (0.1)
  --client-processes P      processes the viewers are spread over                 (1)
  --window-size W           the shared hub's windowSize (small: resumes take catch-up
                            SUBSCRIBEs)                                            (the hub's default)
  --help                    this text
`;

const { values: flags } = parseArgs({
  options: {
    viewers: { type: 'string', default: '10000' },
    'per-viewer-viewers': { type: 'string', default: '100' },
    widgets: { type: 'string', default: '10' },
    'rows-per-widget': { type: 'string', default: '10' },
    'commits-per-second': { type: 'string', default: '10' },
    seconds: { type: 'string', default: '30' },
    designs: { type: 'string', default: DESIGNS.join(',') },
    'disconnect-fraction': { type: 'string', default: '0.1' },
    'client-processes': { type: 'string', default: '1' },
    'window-size': { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (flags.help) {
  console.log(USAGE);
  process.exit(0);
}
const viewerCount = positiveFlag(flags, 'viewers', { integer: true });
const perViewerCount = Math.min(
  positiveFlag(flags, 'per-viewer-viewers', { integer: true }),
  viewerCount,
);
if (perViewerCount > 1000) throw new Error('--per-viewer-viewers is a pool size: at most 1000');
const widgets = positiveFlag(flags, 'widgets', { integer: true });
const rowsPerWidget = positiveFlag(flags, 'rows-per-widget', { integer: true });
const commitsPerSecond = positiveFlag(flags, 'commits-per-second');
const seconds = positiveFlag(flags, 'seconds');
const clientProcesses = positiveFlag(flags, 'client-processes', { integer: true });
const windowSize =
  flags['window-size'] === undefined
    ? undefined
    : positiveFlag(flags, 'window-size', { integer: true });
const disconnectFraction = Number(flags['disconnect-fraction']);
if (!(disconnectFraction >= 0 && disconnectFraction <= 1)) {
  throw new Error('--disconnect-fraction must be from 0 to 1');
}
const designs = flags.designs.split(',').map((name) => {
  const design = DESIGNS.find((known) => known === name.trim());
  if (design === undefined) throw new Error(`--designs: unknown "${name}" (${DESIGNS.join(', ')})`);
  return design;
});

const here = (file: string): string => fileURLToPath(new URL(file, import.meta.url));

// ------------------------------------------------------------------ /proc

/** File descriptors a process holds, and its soft limit ("Max open files"). */
async function descriptors(pid: number): Promise<{ open: number; limit: number }> {
  const open = (await readdir(`/proc/${pid}/fd`)).length;
  const limits = await readFile(`/proc/${pid}/limits`, 'utf8');
  const line = limits.split('\n').find((text) => text.startsWith('Max open files'));
  return { open, limit: Number(line?.split(/\s+/)[3]) };
}

// ------------------------------------------------------------------ one design

/** What one design's run measured. */
interface DesignResult {
  design: Design;
  viewers: number;
  connected: number;
  connectSeconds: number;
  outcomes: Record<string, number>;
  materialize: {
    connections: number;
    subscribes: number;
    peakConnections: number;
    peakSubscribes: number;
  };
  hub: unknown;
  rss: {
    before: number;
    connected: number;
    perViewer: number;
    heapPerViewer: number;
    /** (RSS with every viewer − RSS with the first half) ÷ the second half's viewers. */
    marginalPerViewer: number;
  };
  delays: { samples: number; p50: number; p99: number; max: number };
  commits: number;
  bounced: number;
  counters: ViewerCounters;
  serverRefusals: Record<string, number>;
  serverWarnings: number;
  firstServerWarnings: string[];
  settled: { viewers: number; settled: number };
  check: { checked: number; mismatches: number; examples: Mismatch[] };
  cpu: { server: number; clients: number; double: number };
  fds: { server: { open: number; limit: number }; clients: { open: number; limit: number }[] };
  clientsRss: number;
  limits: string[];
}

type Double = Forked<DoubleReply, DoubleCommand>;
type Server = Forked<ServerReply, ServerCommand>;
type Clients = Forked<ClientsReply, ClientsCommand>;

/** Sends `command` to every clients process and collects their `op` replies. */
async function all<Op extends ClientsReply['op']>(
  processes: readonly Clients[],
  op: Op,
  command: (index: number) => ClientsCommand,
): Promise<Extract<ClientsReply, { op: Op }>[]> {
  return Promise.all(
    processes.map((clients, index) => {
      const reply = clients.reply(op);
      clients.send(command(index));
      return reply;
    }),
  );
}

/** Adds up the counters of the clients processes. */
function mergeCounters(list: readonly ViewerCounters[]): ViewerCounters {
  const merged = noCounters();
  for (const counters of list) {
    for (const key of ['refused', 'socketErrors', 'streamEnds'] as const) {
      for (const [name, count] of Object.entries(counters[key])) {
        merged[key][name] = (merged[key][name] ?? 0) + count;
      }
    }
    merged.resets += counters.resets;
    merged.reconnects += counters.reconnects;
    merged.timeouts += counters.timeouts;
  }
  return merged;
}

/** p50, p99 and max of merged [ms, count] histograms. */
function delayStats(histograms: readonly [number, number][][]) {
  const counts = new Map<number, number>();
  for (const entries of histograms) {
    for (const [ms, count] of entries) counts.set(ms, (counts.get(ms) ?? 0) + count);
  }
  const sorted = [...counts].sort(([a], [b]) => a - b);
  const samples = sorted.reduce((sum, [, count]) => sum + count, 0);
  const at = (p: number): number => {
    const rank = Math.max(1, Math.ceil(p * samples));
    let seen = 0;
    for (const [ms, count] of sorted) {
      seen += count;
      if (seen >= rank) return ms;
    }
    return Number.NaN;
  };
  return { samples, p50: at(0.5), p99: at(0.99), max: sorted.at(-1)?.[0] ?? Number.NaN };
}

const sum = (numbers: readonly number[]): number => numbers.reduce((a, b) => a + b, 0);
const total = (counts: Record<string, number>): number => sum(Object.values(counts));

async function runDesign(design: Design, stopping: Set<() => void>): Promise<DesignResult> {
  const viewers = design === 'per-viewer' ? perViewerCount : viewerCount;
  const double: Double = forkWithIpc('double', here('./double-process.ts'), [
    '--widgets',
    String(widgets),
    '--rows-per-widget',
    String(rowsPerWidget),
  ]);
  const stopDouble = (): void => double.send({ op: 'stop' });
  stopping.add(stopDouble);
  const { url } = await double.reply('ready');
  const server: Server = forkWithIpc('server', here('./server.ts'), [
    '--design',
    design,
    '--url',
    url,
    '--viewers',
    String(viewers),
    '--widgets',
    String(widgets),
    ...(windowSize === undefined ? [] : ['--window-size', String(windowSize)]),
  ]);
  const stopServer = (): void => server.send({ op: 'stop' });
  stopping.add(stopServer);
  const clients: Clients[] = Array.from({ length: clientProcesses }, (_, index) =>
    forkWithIpc<ClientsReply, ClientsCommand>(`clients ${index + 1}`, here('./clients.ts')),
  );
  const stopClients = (): void => {
    for (const process_ of clients) process_.send({ op: 'stop' });
  };
  stopping.add(stopClients);
  try {
    const { port } = await server.reply('ready');
    await Promise.all(clients.map((process_) => process_.reply('ready')));
    const memory = async () => {
      const reply = server.reply('memory');
      server.send({ op: 'memory' });
      return reply;
    };
    const serverStats = async () => {
      const reply = server.reply('stats');
      server.send({ op: 'stats' });
      return reply;
    };
    const doubleStats = async () => {
      const reply = double.reply('stats');
      double.send({ op: 'stats' });
      return reply;
    };

    const before = await memory();
    const running = double.reply('running');
    double.send({ op: 'run', commitsPerSecond });
    await running;

    // In two halves, the RSS read after each: the second half's growth is the cost of a viewer
    // without the one-time costs (the first SUBSCRIBEs, code compiled on first use).
    console.log(`  ${design}: connecting ${viewers} viewers…`);
    const connectStarted = performance.now();
    const outcomes: Record<string, number> = {};
    const connectRange = async (from: number, count: number): Promise<void> => {
      const share = Math.ceil(count / clientProcesses);
      const replies = await all(clients, 'connected', (index) => ({
        op: 'connect',
        port,
        first: from + index * share,
        count: Math.max(0, Math.min(share, count - index * share)),
        widgets,
      }));
      for (const reply of replies) {
        for (const [outcome, n] of Object.entries(reply.outcomes)) {
          outcomes[outcome] = (outcomes[outcome] ?? 0) + n;
        }
      }
    };
    const firstHalf = Math.floor(viewers / 2);
    await connectRange(0, firstHalf);
    const readyAtHalf = outcomes.ready ?? 0;
    await sleep(SETTLE_SECONDS * 1000);
    const half = await memory();
    await connectRange(firstHalf, viewers - firstHalf);
    const connectSeconds = (performance.now() - connectStarted) / 1000 - SETTLE_SECONDS;
    const ready = outcomes.ready ?? 0;
    console.log(
      `  ${design}: ${ready} of ${viewers} connected in ${connectSeconds.toFixed(1)} s ` +
        `(${JSON.stringify(outcomes)})`,
    );
    await sleep(SETTLE_SECONDS * 1000);
    const after = await memory();
    const loaded = await doubleStats();
    const fdsLoaded = {
      server: await descriptors(pidOf(server.child)),
      clients: await Promise.all(clients.map((process_) => descriptors(pidOf(process_.child)))),
    };

    // The steady window: delays recorded, a share of the viewers bounce.
    const pids = {
      server: pidOf(server.child),
      double: pidOf(double.child),
      clients: clients.map((process_) => pidOf(process_.child)),
    };
    const cpuOf = async () => ({
      server: await processCpu(pids.server),
      double: await processCpu(pids.double),
      clients: sum(await Promise.all(pids.clients.map(processCpu))),
    });
    const cpuBefore = await cpuOf();
    const windowStarted = performance.now();
    await all(clients, 'window-started', () => ({ op: 'window', on: true }));
    const bounced = sum(
      (
        await all(clients, 'bouncing', () => ({
          op: 'bounce',
          fraction: disconnectFraction,
          withinMs: seconds * 800,
        }))
      ).map((reply) => reply.viewers),
    );
    console.log(`  ${design}: steady window of ${seconds} s; ${bounced} viewers disconnect once…`);
    await sleep(seconds * 1000);
    const windowEnded = await all(clients, 'window-ended', () => ({ op: 'window', on: false }));
    const windowSeconds = (performance.now() - windowStarted) / 1000;
    const cpuAfter = await cpuOf();
    const peak = await doubleStats();
    const stats = await serverStats();

    // The end: commits stop; every viewer must reach the last progress and hold the view's rows.
    const paused = double.reply('paused');
    double.send({ op: 'pause' });
    const { upper, commits } = await paused;
    const stateReply = double.reply('state');
    double.send({ op: 'state' });
    const state = await stateReply;
    if (state.upper !== upper) throw new Error('the double committed after it paused');
    const settledReplies = await all(clients, 'settled', () => ({
      op: 'settle',
      upper,
      timeoutMs: 30_000,
    }));
    const checked = await all(clients, 'checked', () => ({ op: 'check', widgets: state.widgets }));

    const cpuPercent = (key: 'server' | 'double' | 'clients'): number =>
      (cpuAfter[key] - cpuBefore[key]) / 10_000 / windowSeconds;
    const counters = mergeCounters(settledReplies.map((reply) => reply.counters));
    const result: DesignResult = {
      design,
      viewers,
      connected: ready,
      connectSeconds,
      outcomes,
      materialize: {
        connections: loaded.now.connections,
        subscribes: loaded.now.subscribes,
        peakConnections: peak.peak.connections,
        peakSubscribes: peak.peak.subscribes,
      },
      hub: stats.hub,
      rss: {
        before: before.rss,
        connected: after.rss,
        perViewer: ready === 0 ? Number.NaN : (after.rss - before.rss) / ready,
        heapPerViewer: ready === 0 ? Number.NaN : (after.heapUsed - before.heapUsed) / ready,
        marginalPerViewer:
          ready === readyAtHalf ? Number.NaN : (after.rss - half.rss) / (ready - readyAtHalf),
      },
      delays: delayStats(windowEnded.map((reply) => reply.delays)),
      commits,
      bounced,
      counters,
      serverRefusals: stats.refusals,
      serverWarnings: stats.warnings,
      firstServerWarnings: stats.firstWarnings,
      settled: {
        viewers: sum(settledReplies.map((reply) => reply.viewers)),
        settled: sum(settledReplies.map((reply) => reply.settled)),
      },
      check: {
        checked: sum(checked.map((reply) => reply.checked)),
        mismatches: sum(checked.map((reply) => reply.mismatches)),
        examples: checked.flatMap((reply) => reply.examples).slice(0, 5),
      },
      cpu: {
        server: cpuPercent('server'),
        clients: cpuPercent('clients'),
        double: cpuPercent('double'),
      },
      fds: fdsLoaded,
      clientsRss: sum(windowEnded.map((reply) => reply.rss)),
      limits: [],
    };
    result.limits = limitsOf(result);
    return result;
  } finally {
    stopClients();
    stopServer();
    stopDouble();
    stopping.delete(stopClients);
    stopping.delete(stopServer);
    stopping.delete(stopDouble);
    await sleep(500);
  }
}

/**
 * Where a design stopped short, in words: what ran out when viewers were refused, could not
 * connect or fell behind. Empty when every viewer connected and nothing is near a limit.
 */
function limitsOf(result: DesignResult): string[] {
  const limits: string[] = [];
  const { server, clients } = result.fds;
  const socketErrors = result.counters.socketErrors;
  if ((socketErrors.EMFILE ?? 0) + (socketErrors.ENFILE ?? 0) > 0) {
    limits.push(
      `file descriptors of the viewers' process (EMFILE/ENFILE; ulimit -n ${clients[0]?.limit})`,
    );
  }
  if (server.open >= server.limit * 0.95) {
    limits.push(`file descriptors of the server (${server.open} of ${server.limit} open)`);
  }
  for (const [code, count] of Object.entries(result.serverRefusals)) {
    limits.push(`the server refused ${count} request(s) with ${code}`);
  }
  if (result.connected < result.viewers && total(result.serverRefusals) === 0) {
    limits.push(
      `${result.viewers - result.connected} viewers did not connect: ${JSON.stringify(result.outcomes)}`,
    );
  }
  if (result.cpu.server >= 90) {
    limits.push(`CPU: the server used ${result.cpu.server.toFixed(0)} % of a core in the window`);
  }
  if (result.cpu.server + result.cpu.clients + result.cpu.double >= 180) {
    limits.push(
      `CPU: the processes used ${(result.cpu.server + result.cpu.clients + result.cpu.double).toFixed(0)} % of ${os.cpus().length} cores`,
    );
  }
  if (os.freemem() < os.totalmem() * 0.05) {
    limits.push(`memory: ${mb(os.freemem())} free of ${mb(os.totalmem())}`);
  }
  return limits;
}

const mb = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
const kb = (bytes: number): string => `${(bytes / 1024).toFixed(1)} KB`;

function printResults(results: readonly DesignResult[]): void {
  printTable(
    [
      'design',
      'viewers',
      'MZ conns',
      'SUBSCRIBEs',
      'RSS/viewer',
      'marginal',
      'heap/viewer',
      'p50 ms',
      'p99 ms',
      'max ms',
      'samples',
      'refused',
      'errors',
      'mismatches',
      'server CPU',
    ],
    results.map((result) => [
      result.design,
      `${result.connected}/${result.viewers}`,
      `${result.materialize.connections} (${result.materialize.peakConnections})`,
      `${result.materialize.subscribes} (${result.materialize.peakSubscribes})`,
      kb(result.rss.perViewer),
      kb(result.rss.marginalPerViewer),
      kb(result.rss.heapPerViewer),
      String(result.delays.p50),
      String(result.delays.p99),
      String(result.delays.max),
      String(result.delays.samples),
      String(total(result.counters.refused)),
      String(total(result.counters.socketErrors) + result.counters.timeouts),
      `${result.check.mismatches + result.settled.viewers - result.settled.settled}`,
      `${result.cpu.server.toFixed(0)} %`,
    ]),
  );
  console.log(
    '\nMZ conns / SUBSCRIBEs: held by the double with every viewer connected (peak over the run in ' +
      'parentheses). RSS/viewer: (server RSS with the viewers connected − before), after a full GC, ' +
      '÷ viewers connected; marginal: the same over the second half of the viewers only (one-time ' +
      'costs left out); heap/viewer: V8 heap used, likewise. Delays: commit → client over the steady window, updates committed while ' +
      'the viewer was live. errors: socket errors and connect timeouts.',
  );
  for (const result of results) {
    console.log(`\n${result.design}:`);
    console.log(
      `  ${result.commits} commits; ${result.bounced} viewers bounced, ${result.counters.reconnects} reconnects, ` +
        `${result.counters.resets} resets; stream ends ${JSON.stringify(result.counters.streamEnds)}; ` +
        `refused ${JSON.stringify(result.counters.refused)}; socket errors ${JSON.stringify(result.counters.socketErrors)}`,
    );
    console.log(
      `  server RSS ${mb(result.rss.before)} → ${mb(result.rss.connected)}; viewers' processes ${mb(result.clientsRss)}; ` +
        `CPU in the window: server ${result.cpu.server.toFixed(0)} %, viewers ${result.cpu.clients.toFixed(0)} %, ` +
        `double ${result.cpu.double.toFixed(0)} % of a core; server fds ${result.fds.server.open}/${result.fds.server.limit}`,
    );
    if (result.hub !== null)
      console.log(`  hub stats at the end / peak: ${JSON.stringify(result.hub)}`);
    console.log(
      `  exactly-once: ${result.check.checked} viewers checked, ${result.check.mismatches} mismatches` +
        (result.settled.settled < result.settled.viewers
          ? `, ${result.settled.viewers - result.settled.settled} did not reach the last progress`
          : '') +
        (result.check.examples.length > 0
          ? ` (e.g. ${JSON.stringify(result.check.examples)})`
          : ''),
    );
    if (result.serverWarnings > 0) {
      console.log(
        `  server logged ${result.serverWarnings} warnings/errors; first: ${result.firstServerWarnings[0]}`,
      );
    }
    for (const limit of result.limits) console.log(`  limit: ${limit}`);
  }
  const shared = results.find((result) => result.design === 'shared');
  if (shared !== undefined) {
    const atTargetScale =
      viewerCount === TARGETS.viewers &&
      widgets === TARGETS.widgets &&
      commitsPerSecond === TARGETS.commitsPerSecond;
    const verdict = (met: boolean): string => (met ? 'met' : 'NOT MET');
    console.log(
      `\ntargets (shared${atTargetScale ? '' : `; they are set for ${TARGETS.viewers} viewers of ${TARGETS.widgets} widgets at ${TARGETS.commitsPerSecond} commits/s, this run is not`}): ` +
        `${TARGETS.viewers} viewers ${verdict(shared.connected >= TARGETS.viewers)} (${shared.connected}); ` +
        `≤ ${widgets} SUBSCRIBEs ${verdict(shared.materialize.peakSubscribes <= widgets)} (peak ${shared.materialize.peakSubscribes}); ` +
        `≤ ${kb(TARGETS.rssPerViewer)} RSS per viewer ${verdict(shared.rss.perViewer <= TARGETS.rssPerViewer)} (${kb(shared.rss.perViewer)}); ` +
        `p99 ≤ ${TARGETS.p99} ms ${verdict(shared.delays.p99 <= TARGETS.p99)} (${shared.delays.p99} ms)`,
    );
  }
}

async function main(): Promise<void> {
  const loadBefore = os.loadavg();
  console.log(
    `live bench: ${viewerCount} viewers (per-viewer: ${perViewerCount}) of ${widgets} widgets × ` +
      `${rowsPerWidget} rows, ${commitsPerSecond} commits/s, a ${seconds} s window, ` +
      `${disconnectFraction * 100} % disconnect once; ${machineLoad(loadBefore)}\n`,
  );
  const stopping = new Set<() => void>();
  tearDownOnSignals('stopping the double, the server and the viewers', async () => {
    for (const stop of stopping) stop();
    await sleep(500);
  });
  const results: DesignResult[] = [];
  for (const design of designs) results.push(await runDesign(design, stopping));
  console.log('');
  printResults(results);
  await writeResults(
    RESULTS,
    { loadBefore },
    {
      options: {
        viewers: viewerCount,
        perViewerViewers: perViewerCount,
        widgets,
        rowsPerWidget,
        commitsPerSecond,
        seconds,
        disconnectFraction,
        clientProcesses,
        windowSize: windowSize ?? null,
      },
      targets: TARGETS,
      results,
    },
  );
  console.log(`\nresults: ${RESULTS}`);
  const failed = results.filter(
    (result) => result.check.mismatches > 0 || result.settled.settled < result.settled.viewers,
  );
  if (failed.length > 0) {
    console.error(
      `exactly-once FAILED in ${failed.map((result) => result.design).join(', ')}: ` +
        "a viewer's state is not the view's, or it never caught up",
    );
    process.exitCode = 1;
  }
}

await main();
