// The Materialize wire double (a test fixture of @flowforge/materialize) in a
// process of its own, so that it does not share an event loop (or the RSS the
// benchmark reports) with the client under test. Controlled over the IPC channel:
//   { op: 'fill', rows, rowsPerTimestamp } → { op: 'filled', asOf, upper, rows }
// Node 24 runs the double's TypeScript directly (type stripping).
import { startMaterializeDouble } from '../../packages/materialize/test/support/materialize-double.ts';

const VIEW = 'bench_rows';
const TENANT = '00000000-0000-4000-8000-000000000001';

const double = await startMaterializeDouble();
double.defineView(VIEW, [
  { name: 'id', type: 'int8' },
  { name: 'tenant_id', type: 'uuid' },
  { name: 'value', type: 'float8' },
  { name: 'label', type: 'text' },
]);
let nextId = 0;

process.on('message', (message) => {
  if (message.op === 'fill') {
    const asOf = double.upper - 1n; // every row below is written after it
    for (let written = 0; written < message.rows;) {
      const count = Math.min(message.rowsPerTimestamp, message.rows - written);
      const diffs = [];
      for (let i = 0; i < count; i += 1) {
        const id = nextId++;
        diffs.push({
          row: { id, tenant_id: TENANT, value: id * 0.5, label: `row number ${id}` },
          diff: 1,
        });
      }
      double.commit(VIEW, diffs);
      written += count;
    }
    process.send({
      op: 'filled',
      asOf: asOf.toString(),
      upper: double.upper.toString(),
      rows: message.rows,
    });
  } else if (message.op === 'stop') {
    void double.stop().then(() => process.exit(0));
  }
});
process.on('disconnect', () => void double.stop().then(() => process.exit(0)));
process.send({ op: 'ready', url: double.url, view: VIEW });
