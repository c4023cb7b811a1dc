/**
 * The Materialize wire double as a process of its own, for the browser suite:
 *
 *   node double-process.ts --port 0 --tenant <uuid> [--rows 4] [--tick-ms 500]
 *
 * Like `@flowforge/materialize-double/cli --demo` (what scripts/demo runs), with what the
 * suite needs that the demo does not give: the orders belong to the tenant the test's
 * Keycloak users are in (the demo's belong to the dev bypass's tenants), every order is
 * that tenant's (so a widget's order ids are consecutive: a lost or repeated one shows),
 * the first ids can continue where a killed process stopped (`--rows`), and the clock is
 * wall-clock milliseconds with history compacted at start, as a restarted Materialize
 * that kept its data but not the old history would look: a resume from before the
 * restart gets `reset` and a fresh snapshot, never the rows again as new inserts.
 *
 * Views (columns tenant_id uuid, order_id int8, product text, amount float8, at timestamptz):
 *   demo_orders   `--rows` orders at start, one more every `--tick-ms`
 *   origin_probe  the same orders: only the cross-origin test's widget reads it, so a
 *                 SUBSCRIBE on it shows that request reached Materialize
 *
 * Output, one line each: the URL first, then JSON lines the test reads:
 *   {"subscribe":"<statement>"}  every statement that declares a SUBSCRIBE, as received
 *   {"inserted":<order id>}      every order added after start
 * Stops on SIGTERM/SIGINT (exit 0).
 */
import { parseArgs } from 'node:util';
import { startMaterializeDouble, type DoubleRow } from '@flowforge/materialize-double';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    tenant: { type: 'string' },
    rows: { type: 'string', default: '4' },
    'tick-ms': { type: 'string', default: '500' },
  },
});
const tenant = values.tenant;
if (tenant === undefined) throw new Error('--tenant is required');
const port = Number(values.port);
const rows = Number(values.rows);
const tickMs = Number(values['tick-ms']);

const products = ['widget', 'gadget', 'gizmo', 'doohickey'];
const order = (id: number): DoubleRow => ({
  tenant_id: tenant,
  order_id: BigInt(id),
  product: products[id % products.length]!,
  amount: Math.round(((id * 37) % 100) * 1.5 * 100) / 100,
  at: Date.now(),
});
const COLUMNS = [
  { name: 'tenant_id', type: 'uuid' },
  { name: 'order_id', type: 'int8' },
  { name: 'product', type: 'text' },
  { name: 'amount', type: 'float8' },
  { name: 'at', type: 'timestamptz' },
] as const;
const VIEWS = ['demo_orders', 'origin_probe'];

const initialTimestamp = BigInt(Date.now());
const double = await startMaterializeDouble({ port, initialTimestamp });
const initial = Array.from({ length: rows }, (_, index) => order(index + 1));
for (const view of VIEWS) {
  double.defineView(view, COLUMNS, initial);
  double.compact(view, initialTimestamp);
}
const print = (line: unknown): void => {
  process.stdout.write(`${JSON.stringify(line)}\n`);
};
double.onStatement((statement) => {
  if (/\bSUBSCRIBE\b/i.test(statement)) print({ subscribe: statement });
});

let next = rows + 1;
const feed = setInterval(() => {
  const id = next++;
  // One timestamp for the order in both views, as one Materialize transaction would write it.
  for (const view of VIEWS) double.apply(view, [{ row: order(id), diff: 1 }]);
  double.advance();
  print({ inserted: id });
}, tickMs);

process.stdout.write(`${double.url}\n`);
const stop = (): void => {
  clearInterval(feed);
  void double.stop().then(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
