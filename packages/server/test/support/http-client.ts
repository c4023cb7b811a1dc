import { request as httpRequest, type Agent, type IncomingHttpHeaders } from 'node:http';
import { connect, type Socket } from 'node:net';

/** A whole response as node:http received it. */
export interface Answer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly text: string;
}

/**
 * GET `path` (or `method`) on loopback with node:http. Without an `agent`, on a connection of
 * its own that says `Connection: close`, so that no test leaves a socket open.
 */
export function get(
  port: number,
  path: string,
  options: {
    readonly headers?: Record<string, string>;
    readonly agent?: Agent;
    readonly method?: string;
  } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(
      {
        host: '127.0.0.1',
        port,
        path,
        method: options.method ?? 'GET',
        headers: options.headers ?? {},
        agent: options.agent ?? false,
      },
      (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (text += chunk));
        response.on('end', () =>
          resolve({ status: response.statusCode ?? 0, headers: response.headers, text }),
        );
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    request.end();
  });
}

/** An event stream being read: its status, headers and the text so far. */
export interface OpenStream {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  text(): string;
  /** Resolves once the text so far satisfies `done`; rejects if the response ends first. */
  until(done: (text: string) => boolean): Promise<string>;
  /** Resolves with the whole text when the response ends. */
  readonly ended: Promise<string>;
  /** Leaves: destroys the request. */
  close(): void;
}

/** GET `path` and read the response as it arrives (an event stream). */
export function openStream(
  port: number,
  path: string,
  options: { readonly agent?: Agent } = {},
): Promise<OpenStream> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(
      { host: '127.0.0.1', port, path, agent: options.agent ?? false },
      (response) => {
        let text = '';
        let finished = false;
        const waiting = new Set<() => void>();
        const wakeAll = (): void => {
          for (const wake of waiting) wake();
        };
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => {
          text += chunk;
          wakeAll();
        });
        const ended = new Promise<string>((done, failed) => {
          response.on('end', () => {
            finished = true;
            wakeAll();
            done(text);
          });
          response.on('error', (error) => {
            finished = true;
            wakeAll();
            failed(error);
          });
        });
        // A test that never awaits `ended` must not see its rejection as unhandled.
        ended.catch(() => undefined);
        resolve({
          status: response.statusCode ?? 0,
          headers: response.headers,
          text: () => text,
          ended,
          close: () => request.destroy(),
          until: (done) =>
            new Promise((yes, no) => {
              const wake = (): void => {
                if (done(text)) {
                  waiting.delete(wake);
                  yes(text);
                } else if (finished) {
                  waiting.delete(wake);
                  no(
                    new Error(`the stream ended without what was awaited: ${JSON.stringify(text)}`),
                  );
                }
              };
              waiting.add(wake);
              wake();
            }),
        });
      },
    );
    request.on('error', reject);
    request.end();
  });
}

/** What came back on a raw socket: the parsed head, the body, and whether the server closed it. */
export interface RawAnswer {
  readonly status: number;
  /** Header names lower-cased. */
  readonly headers: ReadonlyMap<string, string>;
  readonly body: string;
}

/**
 * Writes `bytes` exactly as given (a malformed request stays malformed) and reads
 * until the server closes the connection; rejects if it has not within `timeoutMs`.
 */
export function rawExchange(port: number, bytes: string, timeoutMs = 10_000): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new Error(
          `the server did not close the connection within ${timeoutMs} ms; got ${JSON.stringify(Buffer.concat(chunks).toString('latin1'))}`,
        ),
      );
    }, timeoutMs);
    socket.on('connect', () => socket.write(bytes));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    // The server may reset after answering: what arrived is the answer.
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      try {
        resolve(parseAnswer(Buffer.concat(chunks).toString('latin1')));
      } catch (error) {
        reject(error instanceof Error ? error : new Error(String(error)));
      }
    });
  });
}

/** Parses one HTTP/1.1 response with a Content-Length body. */
export function parseAnswer(raw: string): RawAnswer {
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) throw new Error(`no complete response head in ${JSON.stringify(raw)}`);
  const [statusLine = '', ...lines] = raw.slice(0, end).split('\r\n');
  const match = /^HTTP\/1\.1 (\d{3}) /.exec(statusLine);
  if (!match) throw new Error(`not a status line: ${JSON.stringify(statusLine)}`);
  const headers = new Map<string, string>();
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  return { status: Number(match[1]), headers, body: raw.slice(end + 4) };
}

/**
 * A keep-alive connection that has had one complete answer to GET `path` and
 * stays open, idle: `closed` resolves when the server closes it.
 */
export async function idleKeepAlive(
  port: number,
  path: string,
): Promise<{ readonly first: RawAnswer; readonly closed: Promise<void>; readonly socket: Socket }> {
  const socket = connect({ host: '127.0.0.1', port });
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  let raw = '';
  const first = await new Promise<RawAnswer>((resolve, reject) => {
    socket.on('connect', () => socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`));
    const onData = (chunk: Buffer): void => {
      raw += chunk.toString('latin1');
      const end = raw.indexOf('\r\n\r\n');
      if (end < 0) return;
      const answer = parseAnswer(raw);
      const length = Number(answer.headers.get('content-length'));
      if (Buffer.byteLength(answer.body, 'latin1') >= length) {
        socket.off('data', onData);
        resolve(answer);
      }
    };
    socket.on('data', onData);
    void closed.then(() => reject(new Error(`closed before an answer: ${JSON.stringify(raw)}`)));
  });
  return { first, closed, socket };
}
