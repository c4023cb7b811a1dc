// The baseline of bench/app/run.mjs: a bare Fastify hello-world, nothing else.
// Usage: node app/bare-server.mjs PORT (prints "ready" once it listens).
import process from 'node:process';
import Fastify from 'fastify';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  process.stderr.write('usage: node app/bare-server.mjs <port>\n');
  process.exit(2);
}
const app = Fastify();
app.get('/hello', () => ({ hello: 'world' }));
await app.listen({ host: '127.0.0.1', port });
const stop = () => {
  app.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
process.stdout.write('ready\n');
