// Event streams over real HTTP, as a viewer's socket sees them: what one turn of
// the source has ready is one HTTP chunk (one socket write), through both
// bindings: Fastify (@flowforge/server/fastify) and node:http
// (@flowforge/server/node). Each test builds its own server on a free loopback
// port and stops it.
import { createServer, type Server } from 'node:http';
import { once } from 'node:events';
import { connect, type AddressInfo, type Socket } from 'node:net';
import Fastify from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { createEventStreams, type EventSource } from '../src/index.js';
import { sendEventStream as sendFastifyEventStream } from '../src/fastify.js';
import { sendEventStream as sendNodeEventStream } from '../src/node.js';
import { deferred, whenAborted, type Deferred } from './support/deferred.js';
import { capturedLogger } from './support/log-capture.js';

/** A server with one route, GET /events, streaming `source`. */
interface Served {
  readonly port: number;
  readonly stop: () => Promise<void>;
}

type Binding = (source: EventSource) => Promise<Served>;

const bindings: Record<string, Binding> = {
  fastify: async (source) => {
    const streams = createEventStreams({ logger: capturedLogger().logger });
    const app = Fastify();
    app.get('/events', (request, reply) =>
      sendFastifyEventStream(request, reply, streams, { clientId: 'user-1', source }),
    );
    await app.listen({ host: '127.0.0.1', port: 0 });
    return {
      port: (app.server.address() as AddressInfo).port,
      stop: async () => {
        await streams.stop();
        await app.close();
      },
    };
  },
  node: async (source) => {
    const streams = createEventStreams({ logger: capturedLogger().logger });
    const server: Server = createServer((request, response) => {
      void sendNodeEventStream(request, response, streams, { clientId: 'user-1', source });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return {
      port: (server.address() as AddressInfo).port,
      stop: async () => {
        await streams.stop();
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      },
    };
  },
};

/** The chunks of a chunked response as they arrive on a raw socket: the body's frames, one per write. */
interface ChunkedReader {
  readonly chunks: string[];
  /** Resolves once `count` chunks arrived; rejects if the connection closes first. */
  until(count: number): Promise<void>;
  close(): void;
}

function readChunks(port: number, path: string): ChunkedReader {
  const socket: Socket = connect({ host: '127.0.0.1', port });
  const chunks: string[] = [];
  const waiting = new Set<() => void>();
  let received = Buffer.alloc(0);
  let bodyStart = -1;
  let closed = false;
  const wakeAll = (): void => {
    for (const wake of waiting) wake();
  };
  socket.on('connect', () =>
    socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`),
  );
  socket.on('data', (data: Buffer) => {
    received = Buffer.concat([received, data]);
    if (bodyStart < 0) {
      const end = received.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = received.subarray(0, end).toString('latin1');
      if (!/^transfer-encoding: chunked$/im.test(head)) {
        // Closing makes `until` reject, with the head in the test's failure.
        chunks.push(head);
        socket.destroy();
        return;
      }
      bodyStart = end + 4;
      received = received.subarray(bodyStart);
    }
    // Each frame: the size in hex, CRLF, the bytes, CRLF. A frame is taken once whole.
    for (;;) {
      const lineEnd = received.indexOf('\r\n');
      if (lineEnd < 0) break;
      const size = Number.parseInt(received.subarray(0, lineEnd).toString('latin1'), 16);
      const frameEnd = lineEnd + 2 + size + 2;
      if (received.length < frameEnd) break;
      if (size > 0) chunks.push(received.subarray(lineEnd + 2, lineEnd + 2 + size).toString());
      received = received.subarray(frameEnd);
    }
    wakeAll();
  });
  socket.on('error', () => undefined);
  socket.on('close', () => {
    closed = true;
    wakeAll();
  });
  return {
    chunks,
    close: () => socket.destroy(),
    until: (count) =>
      new Promise((resolve, reject) => {
        const wake = (): void => {
          if (chunks.length >= count) {
            waiting.delete(wake);
            resolve();
          } else if (closed) {
            waiting.delete(wake);
            reject(new Error(`the connection closed after ${JSON.stringify(chunks)}`));
          }
        };
        waiting.add(wake);
        wake();
      }),
  };
}

const running: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  // Last in, first out: the client leaves before its server stops.
  for (const stop of running.splice(0).reverse()) await stop();
});

async function serve(binding: Binding, source: EventSource): Promise<Served> {
  const served = await binding(source);
  running.push(served.stop);
  return served;
}

describe.each(Object.entries(bindings))('event streams over HTTP (%s)', (_name, binding) => {
  it('sends an update and the events ready with it as one HTTP chunk', async () => {
    let more!: Deferred<void>;
    const source: EventSource = async function* (signal) {
      yield { event: 'update', id: '1', data: '{"rows":1}' };
      yield { event: 'progress', data: '{"ts":1}' };
      yield { event: 'update', id: '2', data: '{"rows":2}' };
      more = deferred();
      // Heeds the abort too, so a stream stopped before `more` (a failed test) closes.
      await Promise.race([more.promise, whenAborted(signal)]);
      if (signal.aborted) return;
      yield { event: 'progress', data: '{"ts":2}' };
      await whenAborted(signal);
    };
    const { port } = await serve(binding, source);
    const reader = readChunks(port, '/events');
    running.push(() => {
      reader.close();
    });
    await reader.until(1);
    expect(reader.chunks).toEqual([
      'retry: 2000\n\n' +
        'event: update\nid: 1\ndata: {"rows":1}\n\n' +
        'event: progress\ndata: {"ts":1}\n\n' +
        'event: update\nid: 2\ndata: {"rows":2}\n\n',
    ]);
    // An event of a later turn is a chunk of its own, sent without waiting for more.
    more.resolve();
    await reader.until(2);
    expect(reader.chunks[1]).toBe('event: progress\ndata: {"ts":2}\n\n');
  });
});
