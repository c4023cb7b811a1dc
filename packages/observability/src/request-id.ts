import { randomUUID } from 'node:crypto';

/** Longest inbound X-Request-ID we keep; longer ones are replaced. */
export const MAX_REQUEST_ID_LENGTH = 128;
const SAFE_REQUEST_ID = /^[A-Za-z0-9._:@/+=-]+$/;

/**
 * The request id to use: the inbound X-Request-ID when it is a sane token
 * (1–128 characters of `A–Z a–z 0–9 . _ : @ / + = -`: no spaces, CR/LF or
 * control characters that could forge log lines or headers), otherwise a new
 * UUID v4.
 */
export function acceptRequestId(inbound: string | readonly string[] | undefined): string {
  const value = typeof inbound === 'string' ? inbound : undefined;
  if (value !== undefined && value.length <= MAX_REQUEST_ID_LENGTH && SAFE_REQUEST_ID.test(value)) {
    return value;
  }
  return randomUUID();
}

/** The trace and parent span of a W3C `traceparent` header. */
export interface TraceParent {
  /** The trace id: 32 lower-case hex digits, not all zero. */
  readonly trace_id: string;
  /** The parent span id: 16 lower-case hex digits, not all zero. */
  readonly span_id: string;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/**
 * Parses a W3C Trace Context `traceparent` (version 00 and future versions by
 * their first four fields). Returns undefined for anything invalid, including
 * the all-zero ids and version ff that the spec forbids.
 */
export function parseTraceparent(
  header: string | readonly string[] | undefined,
): TraceParent | undefined {
  if (typeof header !== 'string' || header.length < 55 || header.length > 512) return undefined;
  const match = TRACEPARENT.exec(header.slice(0, 55).toLowerCase());
  if (!match) return undefined;
  const [, version, traceId = '', spanId = ''] = match;
  if (version === 'ff' || (version === '00' && header.length !== 55)) return undefined;
  // A future version may append fields, always after a dash.
  if (header.length > 55 && header[55] !== '-') return undefined;
  if (/^0+$/.test(traceId) || /^0+$/.test(spanId)) return undefined;
  return { trace_id: traceId, span_id: spanId };
}
