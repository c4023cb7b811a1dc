import { describe, expect, it } from 'vitest';
import { acceptRequestId, parseTraceparent } from './request-id.js';

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('acceptRequestId', () => {
  it.each([
    'abc-123',
    'req_1.2:3@host/x+y=',
    '3f2b6f0e-8c1a-4d5e-9f00-1234567890ab',
    'a'.repeat(128),
  ])('keeps the sane inbound id %s', (id) => {
    expect(acceptRequestId(id)).toBe(id);
  });

  it.each([
    ['missing', undefined],
    ['empty', ''],
    ['too long', 'a'.repeat(129)],
    ['CRLF (log and header injection)', 'abc\r\nSet-Cookie: x=1'],
    ['a space', 'abc def'],
    ['a control character', 'abc\u0000'],
    ['a quote', 'abc"'],
    ['non-ASCII', 'ïd'],
    ['a repeated header', ['a', 'b']],
  ])('replaces an id that is %s with a UUID v4', (_label, inbound) => {
    expect(acceptRequestId(inbound)).toMatch(UUID_V4);
  });

  it('makes a different id each time', () => {
    expect(acceptRequestId(undefined)).not.toBe(acceptRequestId(undefined));
  });
});

describe('parseTraceparent', () => {
  const valid = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

  it('parses a valid version-00 header', () => {
    expect(parseTraceparent(valid)).toEqual({
      trace_id: '4bf92f3577b34da6a3ce929d0e0e4736',
      span_id: '00f067aa0ba902b7',
    });
  });

  it('accepts a future version with extra fields after a dash', () => {
    expect(parseTraceparent(`cc${valid.slice(2)}-what-the-future-holds`)).toMatchObject({
      trace_id: '4bf92f3577b34da6a3ce929d0e0e4736',
    });
  });

  it.each([
    ['missing', undefined],
    ['all-zero trace id', '00-00000000000000000000000000000000-00f067aa0ba902b7-01'],
    ['all-zero span id', '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01'],
    ['version ff', `ff${valid.slice(2)}`],
    ['version 00 with a suffix', `${valid}-x`],
    ['a future version with a suffix not after a dash', `cc${valid.slice(2)}x`],
    ['non-hex', valid.replace('4bf9', 'zzzz')],
    ['short', valid.slice(0, 50)],
    ['repeated header', [valid, valid]],
  ])('rejects %s', (_label, header) => {
    expect(parseTraceparent(header)).toBeUndefined();
  });
});
