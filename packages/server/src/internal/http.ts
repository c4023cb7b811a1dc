import type { Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { EventStream, EventStreams, OpenEventStream } from '../event-streams.js';

// What both bindings do with Node's own server and response objects (Fastify's are the same
// underneath: app.server, reply.raw).

/** Resolves when `signal` aborts (at once if it has). */
export function whenAborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}

/** How often a draining listener looks for connections to close, in ms. */
const SWEEP_MS = 100;

/**
 * The connections of one server, counted from the 'connection' event on, and
 * the sweep that closes the ones no request is using once shutdown began.
 *
 * `server.closeIdleConnections()` closes a keep-alive connection between two
 * requests (Node's parser knows whether one is arriving), but not a connection
 * that never sent a request (Node counts it as a request begun at its connect,
 * for the headers timeout): browsers open one ahead of need (Chromium does), and
 * it held the server's close until the shutdown deadline. Those are the sockets
 * that have not received one byte; a socket is closed once two sweeps in a row
 * found it so, so that a connection whose request is on its way (a load balancer's,
 * during the drain delay) is not cut between its connect and its first bytes.
 */
export class SocketSweep {
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  /** Sockets the last sweep found without a byte received. */
  readonly #unused = new WeakSet<Socket>();
  #timer: NodeJS.Timeout | undefined;

  constructor(server: Server) {
    this.#server = server;
    server.on('connection', (socket: Socket) => {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
  }

  /** Sweeps now, then every 100 ms until {@link SocketSweep.end}. Idempotent. */
  begin(): void {
    if (this.#timer !== undefined) return;
    this.sweep();
    // Unref'd: a drain that is never followed by a stop must not keep the process alive.
    this.#timer = setInterval(() => this.sweep(), SWEEP_MS).unref();
  }

  /** Stops sweeping (the server has closed). */
  end(): void {
    clearInterval(this.#timer);
  }

  /** Closes every connection with no request in flight. */
  sweep(): void {
    this.#server.closeIdleConnections();
    for (const socket of this.#sockets) {
      // bytesRead counts what the HTTP parser consumed too: 0 means no request ever began.
      if (socket.bytesRead > 0 || socket.destroyed) continue;
      if (this.#unused.has(socket)) socket.destroy();
      else this.#unused.add(socket);
    }
  }
}

/**
 * Waits for `closing` (the server's close, which waits for in-flight requests),
 * closing connections as they turn idle meanwhile (one that finished a response
 * begun before the drain had no `Connection: close`; one that never sent a
 * request), and cuts every connection still open when `signal` (the shutdown
 * deadline) aborts.
 */
export async function closeWithin(
  server: Server,
  closing: Promise<unknown>,
  signal: AbortSignal,
  sockets: SocketSweep,
): Promise<void> {
  sockets.begin();
  try {
    await Promise.race([closing, whenAborted(signal)]);
    if (signal.aborted) {
      server.closeAllConnections();
      await closing;
    }
  } finally {
    sockets.end();
  }
}

/**
 * Opens an event stream for the request `response` answers, cancelled when the
 * client leaves; `undefined` when it left while the stream was opening (nobody to answer).
 */
export async function openForResponse(
  response: ServerResponse,
  streams: EventStreams,
  options: Omit<OpenEventStream, 'signal'>,
): Promise<EventStream | undefined> {
  const gone = new AbortController();
  response.once('close', () => gone.abort(new Error('client disconnected')));
  try {
    return await streams.open({ ...options, signal: gone.signal });
  } catch (error) {
    if (gone.signal.aborted) return undefined;
    throw error;
  }
}
