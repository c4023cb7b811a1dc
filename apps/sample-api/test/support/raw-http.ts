import { connect } from 'node:net';

/** A response read off a raw socket: what a client (or an attacker) actually receives. */
export interface RawAnswer {
  readonly status: number;
  /** Header names lower-cased, every value kept (a repeated header is a finding in itself). */
  readonly headers: ReadonlyMap<string, readonly string[]>;
  /** The status line and header lines as sent. */
  readonly head: string;
  /** The body, de-chunked; empty for HEAD, and for an event stream (only its head is read). */
  readonly body: Buffer;
}

/** Thrown when the server closes or stalls without a complete status line and headers. */
export class NoAnswer extends Error {
  constructor(
    message: string,
    readonly received: string,
  ) {
    super(message);
    this.name = 'NoAnswer';
  }
}

/**
 * Writes `request` (bytes exactly as given, so that malformed requests stay
 * malformed) to `port` on loopback and reads the answer until the server closes
 * the connection. The request should say `Connection: close`; an event stream is
 * cut after its head, since it never ends on its own.
 */
export function rawExchange(
  port: number,
  request: Buffer,
  options: { readonly head?: boolean; readonly timeoutMs?: number } = {},
): Promise<RawAnswer> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    let settled = false;
    const finish = (outcome: () => RawAnswer): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      try {
        resolve(outcome());
      } catch (error) {
        reject(error instanceof Error ? error : new Error(String(error)));
      }
    };
    const timer = setTimeout(() => {
      finish(() => {
        throw new NoAnswer(
          `no complete answer within ${timeoutMs} ms`,
          Buffer.concat(chunks).toString('latin1'),
        );
      });
    }, timeoutMs);
    // write, not end: Node's HTTP server drops a request whose client half-closes
    // before the answer is ready (httpAllowHalfOpen is off), as browsers never do.
    socket.on('connect', () => socket.write(request));
    // The server may answer (e.g. 431) and reset before it read the whole request.
    socket.on('error', (error: NodeJS.ErrnoException) =>
      finish(() => {
        try {
          return parse(Buffer.concat(chunks), options.head === true);
        } catch (cause) {
          if (cause instanceof NoAnswer)
            cause.message += ` (socket: ${error.code ?? error.message})`;
          throw cause;
        }
      }),
    );
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      const sofar = Buffer.concat(chunks);
      const end = sofar.indexOf('\r\n\r\n');
      if (
        end >= 0 &&
        /\r\ncontent-type: *text\/event-stream/i.test(sofar.subarray(0, end).toString('latin1'))
      ) {
        finish(() => parse(sofar, true));
      }
    });
    socket.on('end', () => finish(() => parse(Buffer.concat(chunks), options.head === true)));
  });
}

function parse(raw: Buffer, headOnly: boolean): RawAnswer {
  let start = 0;
  for (;;) {
    const end = raw.indexOf('\r\n\r\n', start);
    if (end < 0)
      throw new NoAnswer('the connection ended without a complete head', raw.toString('latin1'));
    const head = raw.subarray(start, end).toString('latin1');
    const [statusLine = '', ...lines] = head.split('\r\n');
    const match = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(statusLine);
    if (!match)
      throw new NoAnswer(`not an HTTP status line: ${statusLine}`, raw.toString('latin1'));
    const status = Number(match[1]);
    if (status >= 100 && status < 200) {
      start = end + 4; // 100 Continue: the real answer follows
      continue;
    }
    const headers = new Map<string, string[]>();
    for (const line of lines) {
      const colon = line.indexOf(':');
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      headers.set(name, [...(headers.get(name) ?? []), value]);
    }
    let body =
      headOnly || status === 204 || status === 304 ? Buffer.alloc(0) : raw.subarray(end + 4);
    if (!headOnly && headers.get('transfer-encoding')?.includes('chunked')) body = dechunk(body);
    return { status, headers, head, body };
  }
}

function dechunk(body: Buffer): Buffer {
  const parts: Buffer[] = [];
  let offset = 0;
  for (;;) {
    const lineEnd = body.indexOf('\r\n', offset);
    if (lineEnd < 0) break;
    const size = Number.parseInt(body.subarray(offset, lineEnd).toString('latin1'), 16);
    if (!Number.isFinite(size) || size === 0) break;
    parts.push(body.subarray(lineEnd + 2, lineEnd + 2 + size));
    offset = lineEnd + 2 + size + 2;
  }
  return Buffer.concat(parts);
}

/** An HTTP/1.1 request as bytes: `Host` and `Connection: close` first, `Content-Length` for a body. */
export function rawRequest(
  method: string,
  target: string | Buffer,
  headers: readonly (readonly [string, string | Buffer])[],
  body?: Buffer,
): Buffer {
  const parts: Buffer[] = [
    Buffer.from(`${method} `, 'latin1'),
    typeof target === 'string' ? Buffer.from(target, 'latin1') : target,
    Buffer.from(' HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n', 'latin1'),
  ];
  for (const [name, value] of headers) {
    parts.push(Buffer.from(`${name}: `, 'latin1'));
    parts.push(typeof value === 'string' ? Buffer.from(value, 'utf8') : value);
    parts.push(Buffer.from('\r\n', 'latin1'));
  }
  if (body !== undefined) parts.push(Buffer.from(`Content-Length: ${body.length}\r\n`, 'latin1'));
  parts.push(Buffer.from('\r\n', 'latin1'));
  if (body !== undefined) parts.push(body);
  return Buffer.concat(parts);
}
