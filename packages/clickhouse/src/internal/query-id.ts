import { randomBytes, randomUUID } from 'node:crypto';

/**
 * A request id we are willing to send as a query_id: the charset and length
 * @flowforge/observability's `acceptRequestId` lets through (anything else, e.g.
 * an id set by hand through `runWithRequestContext`, gets a random UUID).
 */
const SAFE_REQUEST_ID = /^[A-Za-z0-9._:@/+=-]{1,128}$/;

/** What the query id is derived from: @flowforge/observability's request context. */
export interface RequestScope {
  readonly request_id: string;
}

/**
 * The query_id of the next query: `<request id>:<16 random hex digits>` inside
 * a request, a random UUID outside one. The request id is the prefix, so that
 * `system.query_log` joins the request's log lines (`query_id LIKE 'req-42:%'`);
 * the random part keeps ids unique even when clients send the same X-Request-ID
 * at once or pick one that looks like another request's (`abc:2`): ClickHouse
 * refuses a second running query with an id (216), and a caller could not
 * otherwise tell the two apart.
 */
export function nextQueryId(scope: RequestScope | undefined): string {
  if (scope === undefined || !SAFE_REQUEST_ID.test(scope.request_id)) return randomUUID();
  return `${scope.request_id}:${randomBytes(8).toString('hex')}`;
}

/** A caller's own query_id: 1–128 visible ASCII characters. */
export function isValidQueryId(queryId: string): boolean {
  return /^[\x21-\x7e]{1,128}$/.test(queryId);
}
