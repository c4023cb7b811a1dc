// The Materialize of bench/app/soak.mjs: the wire double (a test fixture of
// @flowforge/materialize) in a process of its own, so that its work and memory
// are not the app's. One view, `bench_live (tenant_id uuid, id int8, value float8,
// label text)`: `initial` rows per tenant, then one row per tenant every
// `intervalMs`, ids counting up from 0 per tenant (a stream can check that it got
// every id once). Controlled over the IPC channel:
//   → { op: 'ready', url, view }                      once listening
//   { op: 'pause' } → { op: 'paused', next: { [tenant]: next id } }   stops writing
//   { op: 'stop' }                                     exits
// Usage (forked): soak-double.mjs INTERVAL_MS INITIAL TENANT...
// Node 24 runs the double's TypeScript directly (type stripping).
import { startMaterializeDouble } from '../../packages/materialize/test/support/materialize-double.ts';

const VIEW = 'bench_live';
const [intervalArgument, initialArgument, ...tenants] = process.argv.slice(2);
const intervalMs = Number(intervalArgument);
const initial = Number(initialArgument);

const next = Object.fromEntries(tenants.map((tenant) => [tenant, 0]));
const row = (tenant) => {
  const id = next[tenant]++;
  return { tenant_id: tenant, id, value: id * 0.25, label: `event ${id} of ${tenant.slice(0, 8)}` };
};

const double = await startMaterializeDouble();
const initialRows = [];
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

async function stop() {
  clearInterval(writer);
  await double.stop();
  process.exit(0);
}

process.on('message', (message) => {
  if (message.op === 'pause') {
    clearInterval(writer);
    process.send({ op: 'paused', next, upper: double.upper.toString() });
  } else if (message.op === 'stop') {
    void stop();
  }
});
process.on('disconnect', () => void stop());
process.send({ op: 'ready', url: double.url, view: VIEW });
