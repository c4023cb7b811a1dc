// The baseline of bench/app/run.ts: a bare Fastify hello-world, nothing else.
// Usage: node app/bare-server.ts PORT (prints "ready" once it listens).
import process from 'node:process';
import Fastify from 'fastify';
import { serve } from '../lib/serve.ts';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  process.stderr.write('usage: node app/bare-server.ts <port>\n');
  process.exit(2);
}
const app = Fastify();
app.get('/hello', () => ({ hello: 'world' }));
await serve(app, port);
