import { describe, expect, it } from 'vitest';
import { networkFailureOf } from './network.js';

const withCode = (code: string): Error => Object.assign(new Error(code), { code });

describe('networkFailureOf', () => {
  it.each([
    'ECONNREFUSED',
    'ENOTFOUND',
    'EAI_AGAIN',
    'EHOSTUNREACH',
    'ENETUNREACH',
    'ETIMEDOUT',
    'EADDRNOTAVAIL',
  ])('%s is a connect failure', (code) => expect(networkFailureOf(withCode(code))).toBe('connect'));

  it.each(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE', 'UND_ERR_SOCKET'])(
    '%s is a broken connection',
    (code) => expect(networkFailureOf(withCode(code))).toBe('broken'),
  );

  it('is undefined for other errors and non-errors', () => {
    expect(networkFailureOf(withCode('23505'))).toBeUndefined();
    expect(networkFailureOf(new Error('ECONNREFUSED in the message only'))).toBeUndefined();
    expect(networkFailureOf('ECONNREFUSED')).toBeUndefined();
    expect(networkFailureOf(null)).toBeUndefined();
    expect(networkFailureOf({ code: 42 })).toBeUndefined();
  });

  it('reads the members of an AggregateError (Node connecting to every address of a host)', () => {
    const error = new AggregateError(
      [new Error('other'), withCode('ECONNREFUSED')],
      'connect failed',
    );
    expect(networkFailureOf(error)).toBe('connect');
  });

  it('follows causes, to a bounded depth (a cycle ends)', () => {
    const wrapped = new Error('outer', {
      cause: new Error('middle', { cause: withCode('EPIPE') }),
    });
    expect(networkFailureOf(wrapped)).toBe('broken');
    const cyclic: { cause?: unknown } = {};
    cyclic.cause = cyclic;
    expect(networkFailureOf(cyclic)).toBeUndefined();
    let deep: unknown = withCode('ECONNRESET');
    for (let i = 0; i < 10; i += 1) deep = new Error('wrap', { cause: deep });
    expect(networkFailureOf(deep)).toBeUndefined();
  });
});
