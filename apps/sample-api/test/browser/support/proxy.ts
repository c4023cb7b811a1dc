/**
 * The browser's way to the app instances: a small round-robin reverse proxy
 * (node:http, streaming) in the test process, as a load balancer in front of several
 * instances is, plus the test pages it serves itself on the same origin (paths under
 * `/__test/`), and plain static servers for pages of other origins.
 *
 * Connection-affine, as a layer-4 balancer is: each browser connection is bound to one
 * instance at its first proxied request and carried over one upstream connection, so
 * what the app sees mirrors what the browser does (a keep-alive connection reused, a
 * `Connection: close` that ends it, an idle one the app closes while draining, which
 * the proxy then closes towards the browser). An instance that refuses the connection
 * is skipped for the next one. Every proxied request is logged (instance, status,
 * origin) so tests can tell where a stream went and what the app answered.
 * Plain support code: no vitest imports.
 */
import { once } from 'node:events';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import net, { type AddressInfo, type Socket } from 'node:net';

/** A page or script the test servers answer with. */
export interface TestFile {
  readonly contentType: string;
  /** Read at every request: the README snippet is extracted when the page asks for it. */
  readonly body: () => string | Promise<string>;
}

/** One proxied request. */
export interface ProxyLogEntry {
  readonly seq: number;
  readonly at: number;
  readonly method: string;
  readonly path: string;
  readonly origin: string | undefined;
  /** The browser connection it came on. */
  readonly connection: number;
  /** The instance it went to (the last one tried), or null when none took it. */
  upstream: string | null;
  /** The app's status, or null until it answered (or when it never did). */
  status: number | null;
  contentType: string | null;
  /** Until the response has ended (a stream: until the stream ends). */
  open: boolean;
  /** The response ended before it was complete (the instance died, the browser went away). */
  broken: boolean;
}

/** An app instance the proxy forwards to. */
export interface Upstream {
  readonly name: string;
  readonly port: number;
}

export interface TestProxy {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly log: readonly ProxyLogEntry[];
  /** Replaces the instances (new browser connections are spread over these). */
  setUpstreams(upstreams: readonly Upstream[]): void;
  /** Event streams (`/live/v1/stream`) the app answered 200 and that are still open, per instance. */
  openStreams(): ProxyLogEntry[];
  close(): Promise<void>;
}

interface DownstreamState {
  readonly id: number;
  readonly socket: Socket;
  upstream: Upstream | null;
  agent: http.Agent | null;
  busy: number;
}

const HOP_BY_HOP = ['connection', 'keep-alive', 'transfer-encoding', 'proxy-connection', 'upgrade'];

/** Answers a request for one of `files` (by path); false when it is not one of them. */
async function serveFile(
  files: ReadonlyMap<string, TestFile>,
  path: string,
  res: ServerResponse,
): Promise<boolean> {
  const file = files.get(path.split('?')[0]!);
  if (file === undefined) return false;
  const body = await file.body();
  res.writeHead(200, {
    'content-type': file.contentType,
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
  return true;
}

async function listen(server: http.Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

/** Closes a server and every connection it holds, within a bounded time. */
async function closeServer(server: http.Server, sockets: Set<Socket>): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  for (const socket of sockets) socket.destroy();
  server.closeAllConnections();
  await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 2_000))]);
}

/** Starts the proxy; `files` are served under `/__test/<name>` on its own origin. */
export async function startProxy(files: ReadonlyMap<string, TestFile>): Promise<TestProxy> {
  let upstreams: readonly Upstream[] = [];
  let next = 0;
  let connections = 0;
  let seq = 0;
  const log: ProxyLogEntry[] = [];
  const sockets = new Set<Socket>();
  const states = new WeakMap<Socket, DownstreamState>();
  const testFiles = new Map([...files].map(([name, file]) => [`/__test${name}`, file]));

  const server = http.createServer();
  server.keepAliveTimeout = 60_000;
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    const state: DownstreamState = {
      id: ++connections,
      socket,
      upstream: null,
      agent: null,
      busy: 0,
    };
    states.set(socket, state);
    socket.on('close', () => {
      sockets.delete(socket);
      state.agent?.destroy();
    });
  });

  /** The next instance in turn that has not refused this request yet. */
  const pick = (refused: ReadonlySet<string>): Upstream | null => {
    for (let i = 0; i < upstreams.length; i += 1) {
      const candidate = upstreams[next++ % upstreams.length]!;
      if (!refused.has(candidate.name)) return candidate;
    }
    return null;
  };

  /** Binds the browser connection to an instance, over one upstream connection. */
  const bind = (state: DownstreamState, upstream: Upstream): http.Agent => {
    state.agent?.destroy();
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    agent.createConnection = (_options, callback) => {
      const socket = net.connect(upstream.port, '127.0.0.1');
      // The app closed the upstream connection: close the browser's too unless a response
      // is still going out (that one ends it itself), as the browser would see it direct.
      socket.on('close', () => {
        if (state.busy === 0 && state.agent === agent) state.socket.destroy();
      });
      void callback;
      return socket;
    };
    state.upstream = upstream;
    state.agent = agent;
    return agent;
  };

  const forward = (
    state: DownstreamState,
    req: IncomingMessage,
    res: ServerResponse,
    body: Buffer,
    entry: ProxyLogEntry,
    refused: Set<string>,
  ): void => {
    const upstream = state.upstream ?? pick(refused);
    if (upstream === null) {
      entry.open = false;
      res.writeHead(502, { 'content-type': 'text/plain' }).end('no instance took the connection');
      return;
    }
    const agent =
      state.upstream === upstream && state.agent !== null ? state.agent : bind(state, upstream);
    entry.upstream = upstream.name;
    const headers = { ...req.headers };
    for (const name of HOP_BY_HOP) delete headers[name];
    const request = http.request({
      host: '127.0.0.1',
      port: upstream.port,
      method: req.method,
      path: req.url,
      headers,
      agent,
    });
    request.on('response', (answer) => {
      entry.status = answer.statusCode ?? 0;
      entry.contentType = answer.headers['content-type'] ?? null;
      const out: http.OutgoingHttpHeaders = { ...answer.headers };
      for (const name of HOP_BY_HOP) delete out[name];
      // The app's `Connection: close` ends the browser's connection after this response too.
      if (/\bclose\b/i.test(answer.headers.connection ?? '')) out.connection = 'close';
      res.writeHead(answer.statusCode ?? 502, answer.statusMessage, out);
      res.flushHeaders();
      answer.on('data', (chunk: Buffer) => res.write(chunk));
      answer.on('end', () => res.end());
      answer.on('close', () => {
        if (!answer.complete) {
          entry.broken = true;
          res.destroy();
        }
      });
    });
    request.on('error', (error: NodeJS.ErrnoException) => {
      if (res.headersSent) {
        entry.broken = true;
        res.destroy();
        return;
      }
      const reused = request.reusedSocket;
      if (error.code === 'ECONNREFUSED' || (reused && error.code === 'ECONNRESET')) {
        // Refused: the next instance. A reused idle connection the app had just closed: a
        // new one (to the same instance, which may have stopped listening: then the next).
        if (error.code === 'ECONNREFUSED') refused.add(upstream.name);
        state.agent?.destroy();
        state.agent = null;
        state.upstream = null;
        forward(state, req, res, body, entry, refused);
        return;
      }
      entry.broken = true;
      res.destroy();
    });
    res.on('close', () => {
      if (!res.writableFinished) request.destroy();
    });
    request.end(body);
  };

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const state = states.get(req.socket)!;
    void (async () => {
      if (await serveFile(testFiles, req.url ?? '/', res)) return;
      if (req.url === '/favicon.ico') {
        res.writeHead(204).end(); // the browser's own request, not the page's: not the app's business
        return;
      }
      const entry: ProxyLogEntry = {
        seq: ++seq,
        at: Date.now(),
        method: req.method ?? 'GET',
        path: req.url ?? '/',
        origin: req.headers.origin,
        connection: state.id,
        upstream: null,
        status: null,
        contentType: null,
        open: true,
        broken: false,
      };
      log.push(entry);
      state.busy += 1;
      res.on('close', () => {
        state.busy -= 1;
        entry.open = false;
      });
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      forward(state, req, res, Buffer.concat(chunks), entry, new Set());
    })().catch(() => res.destroy());
  });

  const port = await listen(server);
  return {
    url: `http://127.0.0.1:${port}`,
    log,
    setUpstreams(list) {
      upstreams = [...list];
    },
    openStreams: () =>
      log.filter(
        (entry) =>
          entry.open &&
          entry.path.startsWith('/live/v1/stream') &&
          entry.status === 200 &&
          (entry.contentType ?? '').startsWith('text/event-stream'),
      ),
    close: () => closeServer(server, sockets),
  };
}

/** A static server of `files` at their paths: a page of another origin. */
export interface StaticServer {
  /** `http://127.0.0.1:<port>`: the page's origin. */
  readonly url: string;
  close(): Promise<void>;
}

export async function startStaticServer(
  files: ReadonlyMap<string, TestFile>,
): Promise<StaticServer> {
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    void serveFile(files, req.url ?? '/', res).then((served) => {
      if (!served) res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
    });
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  const port = await listen(server);
  return { url: `http://127.0.0.1:${port}`, close: () => closeServer(server, sockets) };
}
