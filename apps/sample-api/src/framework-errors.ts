import { randomUUID } from 'node:crypto';
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { genReqId } from '@flowforge/observability/fastify';
import { problemBody, sendProblem } from './problem.js';

/**
 * Fastify's `frameworkErrors`: a URL it cannot decode (bad percent-encoding,
 * invalid UTF-8) or a path parameter over its length limit. Without it Fastify
 * answers plain JSON that quotes the URL and carries no request id, and no hook
 * runs, so the X-Request-ID header is set here.
 */
export function answerFrameworkError(
  error: { statusCode?: number },
  request: FastifyRequest,
  reply: FastifyReply,
): void {
  const status = error.statusCode !== undefined && error.statusCode < 500 ? error.statusCode : 400;
  void sendProblem(request, reply.header('x-request-id', request.id), {
    title: STATUS_CODES[status] ?? 'Bad Request',
    status,
    detail: 'The request URL cannot be decoded or is too long.',
  });
}

/**
 * Node's `connect` event: a CONNECT request (a proxy tunnel), which Fastify never
 * sees and Node answers by dropping the connection. This is no proxy: 405.
 */
export function answerConnect(request: IncomingMessage, socket: Duplex): void {
  writeProblem(socket, 405, genReqId(request), 'CONNECT is not supported here.', {
    Allow: 'GET, HEAD, POST, PATCH, DELETE',
  });
}

/**
 * Fastify's `clientErrorHandler`: Node's HTTP parser refused the request before
 * there was one (a malformed request line or header, headers over the size limit,
 * a request that took too long to arrive). Answered like every other error: a
 * problem with a request id; the connection is closed since it cannot be trusted.
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

/** A problem written straight to a socket that has no Fastify request; the connection is then closed. */
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
      `Content-Type: application/problem+json; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      `X-Request-ID: ${requestId}\r\n${extra.join('')}` +
      `Connection: close\r\n\r\n${body}`,
    () => socket.destroy(),
  );
}
