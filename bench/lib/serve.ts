// The child side of startServer(): a server process that listens, says "ready" and
// closes on SIGTERM or SIGINT.
import process from 'node:process';

/** What serve() needs of a Fastify instance, whatever its logger and type provider. */
export interface Listener {
  listen(options: { host: string; port: number }): Promise<unknown>;
  close(): PromiseLike<unknown>;
}

/**
 * Listens on 127.0.0.1:`port`, then prints "ready" on stdout (what startServer()
 * waits for); SIGTERM or SIGINT closes the server and exits 0 (1 if closing failed).
 */
export async function serve(app: Listener, port: number): Promise<void> {
  await app.listen({ host: '127.0.0.1', port });
  const stop = (): void => {
    app.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  process.stdout.write('ready\n');
}
