import { getRequestContext, runWithRequestContext } from '@flowforge/observability';
import { describe, expect, it } from 'vitest';
import { isValidQueryId, nextQueryId } from './query-id.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('nextQueryId', () => {
  it('is <request id>:<16 random hex digits> inside a request, a new one per query', () => {
    const ids = runWithRequestContext({ request_id: 'req-42' }, () => [
      nextQueryId(getRequestContext()),
      nextQueryId(getRequestContext()),
      nextQueryId(getRequestContext()),
    ]);
    for (const id of ids) expect(id).toMatch(/^req-42:[0-9a-f]{16}$/);
    expect(new Set(ids).size).toBe(3);
  });

  it('differs between requests that share a request id (clients may send the same X-Request-ID)', () => {
    const first = runWithRequestContext({ request_id: 'same' }, () =>
      nextQueryId(getRequestContext()),
    );
    const second = runWithRequestContext({ request_id: 'same' }, () =>
      nextQueryId(getRequestContext()),
    );
    expect(first).toMatch(/^same:/);
    expect(second).toMatch(/^same:/);
    expect(first).not.toBe(second);
  });

  it('never gives a request an id another request can name in advance (`abc:2`)', () => {
    const [first, second] = runWithRequestContext({ request_id: 'abc' }, () => [
      nextQueryId(getRequestContext()),
      nextQueryId(getRequestContext()),
    ]);
    expect([first, second]).not.toContain('abc');
    expect([first, second]).not.toContain('abc:2');
  });

  it('is a random UUID outside a request', () => {
    const a = nextQueryId(undefined);
    const b = nextQueryId(getRequestContext());
    expect(a).toMatch(UUID);
    expect(b).toMatch(UUID);
    expect(a).not.toBe(b);
  });

  it('is a random UUID when the request id is not a safe token', () => {
    for (const requestId of ['', 'has space', 'new\nline', 'x'.repeat(129), 'quote"']) {
      expect(
        runWithRequestContext({ request_id: requestId }, () => nextQueryId(getRequestContext())),
      ).toMatch(UUID);
    }
  });

  it('keeps every charset acceptRequestId lets through as the prefix, and stays a valid query id', () => {
    const requestId = 'A-z_0.9:@/+=';
    const id = runWithRequestContext({ request_id: requestId }, () =>
      nextQueryId(getRequestContext()),
    );
    expect(id.startsWith(`${requestId}:`)).toBe(true);
    expect(isValidQueryId(id)).toBe(true);
  });
});

describe('isValidQueryId', () => {
  it('takes 1–128 visible ASCII characters', () => {
    expect(isValidQueryId('import-2026-11-28:1')).toBe(true);
    expect(isValidQueryId('x'.repeat(128))).toBe(true);
    expect(isValidQueryId('')).toBe(false);
    expect(isValidQueryId('x'.repeat(129))).toBe(false);
    expect(isValidQueryId('a b')).toBe(false);
    expect(isValidQueryId('é')).toBe(false);
  });
});
