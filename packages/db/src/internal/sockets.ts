import net from 'node:net';

/**
 * The sockets of one pool, opened through node-postgres's `stream` option, so
 * that `close()` can cut them when the server no longer answers: pg-pool's
 * `end()` waits for every checked-out client, and a client's goodbye
 * (Terminate, then FIN) waits for the server's FIN, both for ever on a frozen
 * server.
 */
export class PoolSockets {
  readonly #open = new Set<net.Socket>();

  /** A new socket for one connection (node-postgres connects it). */
  open(): net.Socket {
    const socket = new net.Socket();
    this.#open.add(socket);
    socket.once('close', () => this.#open.delete(socket));
    return socket;
  }

  /**
   * Waits until `ending` (the pool's `end()`) has resolved and every socket has
   * closed, for at most `timeoutMs`; then destroys the sockets still open (their
   * queries fail with a lost connection, and the pool finishes ending behind).
   *
   * @returns how many sockets had to be destroyed (0: everything closed in time)
   */
  async closeWithin(ending: Promise<void>, timeoutMs: number): Promise<number> {
    const closed = ending.then(() =>
      Promise.all(
        [...this.#open].map(
          (socket) => new Promise<void>((resolve) => socket.once('close', () => resolve())),
        ),
      ),
    );
    // Past the deadline nobody awaits it any more; its late rejection must not go unhandled.
    closed.catch(() => undefined);
    let timer: NodeJS.Timeout | undefined;
    const inTime = await Promise.race([
      closed.then(() => true),
      new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), timeoutMs);
      }),
    ]).finally(() => clearTimeout(timer));
    if (inTime) return 0;
    const stuck = [...this.#open];
    for (const socket of stuck) socket.destroy();
    return stuck.length;
  }
}
