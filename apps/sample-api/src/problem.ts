import type { FastifyReply, FastifyRequest } from 'fastify';

/** An RFC 9457 problem detail, as every error response of the app is shaped. */
export interface Problem {
  readonly type?: string;
  readonly title: string;
  readonly status: number;
  readonly detail?: string;
}

/** The JSON body of `problem` for the request `requestId` (its `instance` and `request_id`). */
export function problemBody(requestId: string, problem: Problem): Record<string, unknown> {
  return {
    type: 'about:blank',
    ...problem,
    instance: `urn:request:${requestId}`,
    request_id: requestId,
  };
}

/** Sends `problem` as application/problem+json, with the request id as `instance`. */
export function sendProblem(
  request: FastifyRequest,
  reply: FastifyReply,
  problem: Problem,
): FastifyReply {
  return reply
    .code(problem.status)
    .type('application/problem+json')
    .send(problemBody(request.id, problem));
}
