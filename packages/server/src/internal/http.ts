import type { Server, ServerResponse } from 'node:http';
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

/**
 * Waits for `closing` (the server's close, which waits for in-flight requests),
 * closing connections as they turn idle meanwhile (one that finished a response
 * begun before the drain had no `Connection: close`), and cuts every connection
 * still open when `signal` (the shutdown deadline) aborts.
 */
export async function closeWithin(
  server: Server,
  closing: Promise<unknown>,
  signal: AbortSignal,
): Promise<void> {
  const sweep = setInterval(() => server.closeIdleConnections(), 100);
  try {
    await Promise.race([closing, whenAborted(signal)]);
    if (signal.aborted) {
      server.closeAllConnections();
      await closing;
    }
  } finally {
    clearInterval(sweep);
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
