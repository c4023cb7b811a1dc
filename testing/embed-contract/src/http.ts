import { once } from 'node:events';
import { request as httpRequest } from 'node:http';
import { connect, createServer } from 'node:net';
import { expect } from 'vitest';

/** A response as the contract reads it. */
export interface Answer {
  readonly status: number;
  readonly headers: Headers;
  /** The body as sent. */
  readonly text: string;
  /** The parsed body when it is JSON (problems included), else `undefined`. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- untyped JSON; the assertions check its shape
  readonly body: any;
}

/**
 * What every response of a FlowForge service carries, checked on each one the
 * contract receives: an X-Request-ID, and for every error an RFC 9457 problem
 * (`application/problem+json`) whose `status` is the response's and whose
 * `request_id` and `instance` name that same id.
 */
function expectEnvelope(answer: Answer, what: string): void {
  const requestId = answer.headers.get('x-request-id');
  expect(requestId, `${what}: X-Request-ID`).toMatch(/\S/);
  if (answer.status < 400) return;
  expect(answer.headers.get('content-type'), `${what}: content type`).toMatch(
    /^application\/problem\+json/,
  );
  expect(answer.body, `${what}: problem`).toMatchObject({
    type: 'about:blank',
    title: expect.any(String) as unknown,
    status: answer.status,
    request_id: requestId,
    instance: `urn:request:${requestId}`,
  });
}

/** GET `path` of `baseUrl` over a real socket; the answer's envelope is checked. */
export async function get(
  baseUrl: string,
  path: string,
  headers: Readonly<Record<string, string>> = {},
): Promise<Answer> {
  const response = await fetch(`${baseUrl}${path}`, { headers });
  const text = await response.text();
  const json = /^application\/(problem\+)?json/.test(response.headers.get('content-type') ?? '');
  const answer: Answer = {
    status: response.status,
    headers: response.headers,
    text,
    body: json ? (JSON.parse(text) as unknown) : undefined,
  };
  // Readiness answers its report at every status (503: not ready, or shutting down), never a problem.
  if (path !== '/health/ready') expectEnvelope(answer, `GET ${path} → ${answer.status}`);
  else expect(answer.headers.get('x-request-id')).toMatch(/\S/);
  return answer;
}

/**
 * GET with headers exactly as given, in order (`[name, value, name, value, …]`):
 * the only way to send one header twice, which fetch would join into one. Node
 * adds no Host to a raw list, and a server refuses HTTP/1.1 without one (a bare
 * 400 before any handler): it is sent first.
 */
export function getRaw(
  baseUrl: string,
  path: string,
  rawHeaders: readonly string[],
): Promise<{ status: number; headers: Record<string, string | string[] | undefined> }> {
  const url = new URL(path, baseUrl);
  return new Promise((resolve, reject) => {
    const request = httpRequest(url, { headers: ['host', url.host, ...rawHeaders] }, (response) => {
      response.resume();
      response.on('end', () =>
        resolve({ status: response.statusCode ?? 0, headers: response.headers }),
      );
    });
    request.on('error', reject);
    request.end();
  });
}

/** A loopback port nobody listens on (free a moment ago): a store there is down. */
export async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

/** One readiness probe on a fresh connection, as a kubelet sends it: its status, or the error code. */
export function probeReadiness(port: number): Promise<{ at: number; outcome: string }> {
  return new Promise((resolve) => {
    const failed = (error: NodeJS.ErrnoException): void =>
      resolve({ at: Date.now(), outcome: error.code ?? 'error' });
    const request = httpRequest(
      { host: '127.0.0.1', port, path: '/health/ready', agent: false },
      (response) => {
        response.resume();
        response.on('end', () => resolve({ at: Date.now(), outcome: String(response.statusCode) }));
        response.on('error', failed);
      },
    );
    request.on('error', failed);
    request.end();
  });
}

/** A request held back on an accepted connection; see {@link holdRequest}. */
export interface HeldRequest {
  /** Sends the end of the headers; resolves to the answer once the server closes the connection. */
  finish(): Promise<{ status: number; body: string }>;
}

/**
 * Opens a connection and sends a GET's request line and first header, holding
 * the rest back: the server has accepted the connection and begun a request
 * (so it is not idle, and shutdown does not cut it) but has not routed it yet.
 * What it answers after `finish()` is what the service says from then on.
 */
export async function holdRequest(port: number, path: string): Promise<HeldRequest> {
  const socket = connect({ host: '127.0.0.1', port });
  await once(socket, 'connect');
  socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n`);
  let raw = '';
  socket.on('data', (chunk: Buffer) => (raw += chunk.toString()));
  const closed = once(socket, 'close');
  return {
    async finish() {
      socket.write('Accept: application/json\r\n\r\n');
      await closed; // a draining service answers with Connection: close
      const [head = '', body = ''] = raw.split('\r\n\r\n');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
      // A chunked body: the JSON is its first chunk.
      return { status, body: /\{.*\}/s.exec(body)?.[0] ?? body };
    },
  };
}
