// The Materialize of bench/app/soak.ts: the wire double (@flowforge/materialize-double,
// a private test-double package) in a process of its own, so that its work and memory
// are not the app's. One view, `bench_live (tenant_id uuid, id int8, value float8,
// label text)`: `initial` rows per tenant, then one row per tenant every
// `intervalMs`, ids counting up from 0 per tenant (a stream can check that it got
// every id once). Controlled over the IPC channel:
//   → { op: 'ready', url, view }                      once listening
//   { op: 'pause' } → { op: 'paused', next: { [tenant]: next id } }   stops writing
//   { op: 'stop' }                                     exits
// Usage (forked): soak-double.ts INTERVAL_MS INITIAL TENANT...
import process from 'node:process';
import { startMaterializeDouble, type DoubleRow } from '@flowforge/materialize-double';
import { onParentMessage, sendToParent } from '../lib/ipc.ts';

/** What soak.ts sends. */
export type SoakDoubleCommand = { op: 'pause' } | { op: 'stop' };
/** What this process answers: `next` is each tenant's next id, `upper` a bigint as a string. */
export type SoakDoubleReply =
  | { op: 'ready'; url: string; view: string }
  | { op: 'paused'; next: Record<string, number>; upper: string };

const VIEW = 'bench_live';
const [intervalArgument, initialArgument, ...tenants] = process.argv.slice(2);
const intervalMs = Number(intervalArgument);
const initial = Number(initialArgument);

const next: Record<string, number> = Object.fromEntries(tenants.map((tenant) => [tenant, 0]));
const row = (tenant: string): DoubleRow => {
  const id = next[tenant] ?? 0;
  next[tenant] = id + 1;
  return { tenant_id: tenant, id, value: id * 0.25, label: `event ${id} of ${tenant.slice(0, 8)}` };
};

const double = await startMaterializeDouble();
const initialRows: DoubleRow[] = [];
for (const tenant of tenants) for (let i = 0; i < initial; i += 1) initialRows.push(row(tenant));
double.defineView(
  VIEW,
  [
    { name: 'tenant_id', type: 'uuid' },
    { name: 'id', type: 'int8' },
    { name: 'value', type: 'float8' },
    { name: 'label', type: 'text' },
  ],
  initialRows,
);

// One timestamp per write, every tenant's row in it.
const writer = setInterval(() => double.insert(VIEW, tenants.map(row)), intervalMs);

async function stop(): Promise<void> {
  clearInterval(writer);
  await double.stop();
  process.exit(0);
}

onParentMessage<SoakDoubleCommand>((message) => {
  if (message.op === 'pause') {
    clearInterval(writer);
    sendToParent<SoakDoubleReply>({ op: 'paused', next, upper: double.upper.toString() });
  } else if (message.op === 'stop') {
    void stop();
  }
});
process.on('disconnect', () => void stop());
sendToParent<SoakDoubleReply>({ op: 'ready', url: double.url, view: VIEW });
