import { randomUUID } from 'node:crypto';
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { acceptRequestId } from '@flowforge/observability';
import { PROBLEM_CONTENT_TYPE, problemBody } from './problems.js';

// What Node's HTTP server refuses before any framework sees a request, answered
// like every other error: a problem with a request id. Both bindings install these.

/**
 * Node's `connect` event: a CONNECT request (a proxy tunnel), which no framework
 * sees and Node answers by dropping the connection. This is no proxy: 405.
 */
export function answerConnect(request: IncomingMessage, socket: Duplex): void {
  const requestId = acceptRequestId(request.headers['x-request-id']);
  writeProblem(socket, 405, requestId, 'CONNECT is not supported here.', {
    // What a FlowForge API answers; CONNECT is never among them.
    Allow: 'GET, HEAD, POST, PATCH, DELETE',
  });
}

/**
 * Node's `clientError` event: its HTTP parser refused the request before there
 * was one (a malformed request line or header, headers over the size limit, a
 * request that took too long to arrive). The connection is closed: it cannot be trusted.
 */
export function answerClientError(error: NodeJS.ErrnoException, socket: Socket): void {
  // A reset connection has nobody left to answer; one already sending a response
  // (a pipelined request behind a stream) must not get another written into it.
  const inProgress = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (error.code === 'ECONNRESET' || socket.destroyed || inProgress?.headersSent === true) {
    if (!socket.destroyed && inProgress?.headersSent === true) socket.destroy();
    return;
  }
  const status =
    error.code === 'HPE_HEADER_OVERFLOW'
      ? 431
      : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? 408
        : 400;
  writeProblem(
    socket,
    status,
    randomUUID(),
    'The request is not valid HTTP, or its headers are too large.',
  );
}

/** A problem written straight to a socket that has no request object; the connection is then closed. */
function writeProblem(
  socket: Duplex,
  status: number,
  requestId: string,
  detail: string,
  headers: Readonly<Record<string, string>> = {},
): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const title = STATUS_CODES[status]!;
  const body = JSON.stringify(problemBody(requestId, { title, status, detail }));
  const extra = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`);
  // Destroyed once flushed (destroy() at once would drop what is still buffered),
  // so a client that keeps sending cannot hold the half-open socket.
  socket.end(
    `HTTP/1.1 ${status} ${title}\r\n` +
      `Content-Type: ${PROBLEM_CONTENT_TYPE}\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      `X-Request-ID: ${requestId}\r\n${extra.join('')}` +
      `Connection: close\r\n\r\n${body}`,
    () => socket.destroy(),
  );
}
