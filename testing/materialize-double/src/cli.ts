/**
 * The double as a process of its own (the demo's Materialize, a dev process):
 *
 *   node testing/materialize-double/dist/cli.js [--port 6875] [--demo]
 *
 * Run directly it serves; imported, it does nothing.
 */
import { parseArgs } from 'node:util';
import type { DoubleRow } from './api.js';
import { startMaterializeDouble } from './server.js';

const CLI_USAGE = `Usage: node dist/cli.js [--host 127.0.0.1] [--port 0] [--user materialize]
                        [--password pw] [--tick-ms N] [--demo]
Prints the double's URL on stdout, then serves until SIGTERM / SIGINT.
--demo defines view "demo_orders" (tenant_id uuid, order_id int8, product text,
amount float8, at timestamptz) with four orders of the sample app's two demo
tenants, and inserts one more every second.`;

async function runCli(argv: readonly string[]): Promise<void> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      host: { type: 'string' },
      port: { type: 'string', default: '0' },
      user: { type: 'string' },
      password: { type: 'string' },
      'tick-ms': { type: 'string' },
      demo: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(CLI_USAGE);
    return;
  }
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`--port: not a port: ${values.port}`);
  const tickMs = values['tick-ms'] === undefined ? undefined : Number(values['tick-ms']);
  const double = await startMaterializeDouble({
    port,
    ...(values.host === undefined ? {} : { host: values.host }),
    ...(values.user === undefined ? {} : { user: values.user }),
    ...(values.password === undefined ? {} : { password: values.password }),
    ...(tickMs === undefined ? {} : { tickMs }),
  });
  let feed: NodeJS.Timeout | null = null;
  if (values.demo) {
    // The sample app's demo (apps/sample-api/src/seed.ts): live widgets of the two
    // seeded tenants stream this view, each seeing only its own orders.
    const tenants = [
      '00000000-0000-4000-8000-00000000000a',
      '00000000-0000-4000-8000-00000000000b',
    ];
    const products = ['widget', 'gadget', 'gizmo', 'doohickey'];
    const demoRow = (id: number): DoubleRow => ({
      tenant_id: tenants[id % tenants.length]!,
      order_id: id,
      product: products[id % products.length]!,
      amount: Math.round(((id * 37) % 100) * 1.5 * 100) / 100,
      at: Date.now(),
    });
    double.defineView(
      'demo_orders',
      [
        { name: 'tenant_id', type: 'uuid' },
        { name: 'order_id', type: 'int8' },
        { name: 'product', type: 'text' },
        { name: 'amount', type: 'float8' },
        { name: 'at', type: 'timestamptz' },
      ],
      [1, 2, 3, 4].map(demoRow),
    );
    let nextId = 5;
    feed = setInterval(() => double.insert('demo_orders', [demoRow(nextId++)]), 1000);
  }
  console.log(double.url);
  const shutdown = (): void => {
    if (feed !== null) clearInterval(feed);
    void double.stop().then(() => process.exit(0));
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
}

if (import.meta.main) {
  try {
    await runCli(process.argv.slice(2));
  } catch (error) {
    console.error(error instanceof Error ? error.message : error);
    console.error(CLI_USAGE);
    process.exit(2);
  }
}
