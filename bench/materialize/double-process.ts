// The Materialize wire double (@flowforge/materialize-double, a private test-double
// package) in a process of its own, so that it does not share an event loop (or the
// RSS the benchmark reports) with the client under test. Controlled over the IPC channel:
//   → { op: 'ready', url, view }                                     once listening
//   { op: 'fill', rows, rowsPerTimestamp } → { op: 'filled', asOf, upper, rows }
//   { op: 'stop' }                                                   exits
// The double is the private workspace package @flowforge/materialize-double (built by tsup).
import process from 'node:process';
import { startMaterializeDouble, type DoubleDiff } from '@flowforge/materialize-double';
import { onParentMessage, sendToParent } from '../lib/ipc.ts';

/** What run.ts sends. */
export type DoubleCommand = { op: 'fill'; rows: number; rowsPerTimestamp: number } | { op: 'stop' };
/** What this process answers; bigints travel as strings. */
export type DoubleReply =
  | { op: 'ready'; url: string; view: string }
  | { op: 'filled'; asOf: string; upper: string; rows: number };

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

onParentMessage<DoubleCommand>((message) => {
  if (message.op === 'fill') {
    const asOf = double.upper - 1n; // every row below is written after it
    for (let written = 0; written < message.rows;) {
      const count = Math.min(message.rowsPerTimestamp, message.rows - written);
      const diffs: DoubleDiff[] = [];
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
    sendToParent<DoubleReply>({
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
sendToParent<DoubleReply>({ op: 'ready', url: double.url, view: VIEW });
