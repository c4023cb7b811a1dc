import net, { type AddressInfo } from 'node:net';

/** Where a {@link TcpProxy} forwards to. */
export interface ProxyTarget {
  readonly host: string;
  readonly port: number;
}

/** The real server of `scripts/services`. */
export const POSTGRES_TARGET: ProxyTarget = { host: '127.0.0.1', port: 5432 };

/** One proxied connection: the client's socket and, once forwarded, the server's. */
interface Link {
  readonly downstream: net.Socket;
  upstream: net.Socket | undefined;
}

/**
 * A loopback TCP proxy to a real server that a test can break in two ways:
 *
 * - `stop()`: every proxied connection is dropped and the port refuses new
 *   ones (a server that went down), `start(port)` brings it back on the same port;
 * - `freeze()`: every socket stays open and nothing is forwarded any more, in
 *   either direction; new connections are accepted and held (a frozen primary,
 *   a black-holed network: TCP is fine, nothing answers). `thaw()` forwards
 *   again, including what arrived meanwhile, as a server resumed after SIGSTOP
 *   would answer late.
 */
export class TcpProxy {
  readonly #target: ProxyTarget;
  readonly #links = new Set<Link>();
  #server: net.Server | undefined;
  #frozen = false;
  /** The port it listens on (0 until `start()`); kept across `stop()` so `start()` reuses it. */
  port = 0;

  constructor(target: ProxyTarget = POSTGRES_TARGET) {
    this.#target = target;
  }

  /** True between `freeze()` and `thaw()`. */
  get frozen(): boolean {
    return this.#frozen;
  }

  /** Client connections currently open through the proxy (held ones included). */
  get connections(): number {
    return this.#links.size;
  }

  /** Listens on 127.0.0.1:`port` (0: any free port, then `this.port`). */
  async start(port: number = this.port): Promise<void> {
    const server = net.createServer((downstream) => this.#accept(downstream));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.port = (server.address() as AddressInfo).port;
    this.#server = server;
  }

  /** Drops every proxied connection and closes the listener: new connections are refused. */
  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    this.#frozen = false;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const link of this.#links) {
      link.downstream.destroy();
      link.upstream?.destroy();
    }
    this.#links.clear();
    await closed;
  }

  /** Stops forwarding bytes in both directions; sockets stay open, new ones are held. */
  freeze(): void {
    this.#frozen = true;
    for (const link of this.#links) {
      for (const socket of [link.downstream, link.upstream]) {
        socket?.unpipe();
        socket?.pause();
      }
    }
  }

  /** Forwards again: held connections reach the server, and what was sent meanwhile is delivered. */
  thaw(): void {
    if (!this.#frozen) return;
    this.#frozen = false;
    for (const link of this.#links) {
      if (link.upstream) this.#forward(link);
      else this.#connect(link);
    }
  }

  #accept(downstream: net.Socket): void {
    const link: Link = { downstream, upstream: undefined };
    this.#links.add(link);
    downstream.pause();
    downstream.on('error', () => link.upstream?.destroy());
    downstream.on('close', () => {
      this.#links.delete(link);
      link.upstream?.destroy();
    });
    // A frozen server's kernel still completes the handshake; the server never reads.
    if (!this.#frozen) this.#connect(link);
  }

  #connect(link: Link): void {
    const upstream = net.connect(this.#target.port, this.#target.host);
    link.upstream = upstream;
    upstream.on('error', () => link.downstream.destroy());
    upstream.on('close', () => link.downstream.destroy());
    this.#forward(link);
  }

  #forward(link: Link): void {
    if (this.#frozen || !link.upstream) return;
    link.downstream.pipe(link.upstream);
    link.upstream.pipe(link.downstream);
  }
}
