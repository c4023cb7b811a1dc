// The Materialize wire double (@flowforge/materialize-double) for bench/live, in a process
// of its own so that it shares neither the event loop nor the RSS of the server measured.
// One view, live_rows (widget int4, k int4, value int8, committed_at_ms float8), with
// --rows-per-widget rows for each of --widgets widgets. While running, a commit every
// 1000/K ms changes ONE row of a RANDOM widget (delete the old row, insert one with a new
// value and committed_at_ms = Date.now()); every SUBSCRIBE still gets a progress row per
// commit, whatever its filter (the double advances every subscription's frontier).
// Controlled over the IPC channel:
//   → { op: 'ready', url }                                   once listening
//   { op: 'run', commitsPerSecond } → { op: 'running' }      starts committing
//   { op: 'pause' } → { op: 'paused', upper, commits }       stops committing
//   { op: 'stats' } → { op: 'stats', … }                     connections and SUBSCRIBEs, now and peak
//   { op: 'state' } → { op: 'state', upper, widgets }        the view's rows per widget, as row keys
//   { op: 'stop' }                                           exits
import process from 'node:process';
import { parseArgs } from 'node:util';
import { startMaterializeDouble, type DoubleRow } from '@flowforge/materialize-double';
import { onParentMessage, sendToParent } from '../lib/ipc.ts';
import { LIVE_VIEW, rowKey } from './common.ts';

/** What run.ts sends. */
export type DoubleCommand =
  | { op: 'run'; commitsPerSecond: number }
  | { op: 'pause' }
  | { op: 'stats' }
  | { op: 'state' }
  | { op: 'stop' };

/** Connections and SUBSCRIBEs the double holds. */
interface DoubleLoad {
  /** Client connections open. */
  connections: number;
  /** Sessions with a declared cursor: SUBSCRIBEs held. */
  subscribes: number;
}

/** What this process answers; bigints travel as strings. */
export type DoubleReply =
  | { op: 'ready'; url: string }
  | { op: 'running' }
  | { op: 'paused'; upper: string; commits: number }
  | {
      op: 'stats';
      now: DoubleLoad;
      /** The most seen by a sampler every 100 ms since the double started. */
      peak: DoubleLoad;
      connectionsOpened: number;
      statements: number;
    }
  | { op: 'state'; upper: string; widgets: string[][] };

const { values: flags } = parseArgs({
  options: {
    widgets: { type: 'string', default: '10' },
    'rows-per-widget': { type: 'string', default: '10' },
  },
});
const widgets = Number(flags.widgets);
const rowsPerWidget = Number(flags['rows-per-widget']);

const double = await startMaterializeDouble();
let nextValue = 0n;
/** The view's current rows: [widget][k]. */
const current: DoubleRow[][] = [];
for (let widget = 0; widget < widgets; widget += 1) {
  const rows: DoubleRow[] = [];
  for (let k = 0; k < rowsPerWidget; k += 1) {
    rows.push({ widget, k, value: nextValue++, committed_at_ms: Date.now() });
  }
  current.push(rows);
}
double.defineView(
  LIVE_VIEW,
  [
    { name: 'widget', type: 'int4' },
    { name: 'k', type: 'int4' },
    { name: 'value', type: 'int8' },
    { name: 'committed_at_ms', type: 'float8' },
  ],
  current.flat(),
);

let commits = 0;
let timer: NodeJS.Timeout | undefined;

/** Commits at a fixed schedule (not a fixed interval: a late commit does not push the next ones back). */
function run(commitsPerSecond: number): void {
  const period = 1000 / commitsPerSecond;
  const started = performance.now();
  let due = 0;
  const tick = (): void => {
    const widget = Math.floor(Math.random() * widgets);
    const k = Math.floor(Math.random() * rowsPerWidget);
    const rows = current[widget];
    const old = rows?.[k];
    if (rows === undefined || old === undefined) throw new Error(`no row ${widget}/${k}`);
    const row: DoubleRow = { widget, k, value: nextValue++, committed_at_ms: Date.now() };
    rows[k] = row;
    double.commit(LIVE_VIEW, [
      { row: old, diff: -1 },
      { row, diff: 1 },
    ]);
    commits += 1;
    due += 1;
    timer = setTimeout(tick, Math.max(0, started + due * period - performance.now()));
  };
  timer = setTimeout(tick, period);
}

const peak: DoubleLoad = { connections: 0, subscribes: 0 };
function load(): DoubleLoad {
  let subscribes = 0;
  for (const session of double.sessions()) if (session.cursor !== null) subscribes += 1;
  return { connections: double.stats.connectionsOpen, subscribes };
}
setInterval(() => {
  const now = load();
  peak.connections = Math.max(peak.connections, now.connections);
  peak.subscribes = Math.max(peak.subscribes, now.subscribes);
}, 100).unref();

onParentMessage<DoubleCommand>((message) => {
  switch (message.op) {
    case 'run':
      run(message.commitsPerSecond);
      sendToParent<DoubleReply>({ op: 'running' });
      break;
    case 'pause':
      clearTimeout(timer);
      sendToParent<DoubleReply>({ op: 'paused', upper: double.upper.toString(), commits });
      break;
    case 'stats':
      sendToParent<DoubleReply>({
        op: 'stats',
        now: load(),
        peak: { ...peak },
        connectionsOpened: double.stats.connectionsOpened,
        statements: double.stats.statements,
      });
      break;
    case 'state':
      sendToParent<DoubleReply>({
        op: 'state',
        upper: double.upper.toString(),
        widgets: current.map((rows) => rows.map(rowKey)),
      });
      break;
    case 'stop':
      void double.stop().then(() => process.exit(0));
      break;
  }
});
process.on('disconnect', () => void double.stop().then(() => process.exit(0)));
sendToParent<DoubleReply>({ op: 'ready', url: double.url });
