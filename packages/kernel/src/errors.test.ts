import { describe, expect, it } from 'vitest';
import {
  FlowForgeError,
  defineErrors,
  errorGuard,
  isFlowForgeError,
  sharedErrorKinds,
  type ErrorCatalog,
  type ErrorGuard,
} from './errors.js';

type TestCode = 'UNAVAILABLE' | 'BAD_INPUT';
const CATALOG: ErrorCatalog<TestCode> = defineErrors({
  source: '@acme/test',
  name: 'TestError',
  codes: {
    UNAVAILABLE: { status: 503, retryable: true },
    BAD_INPUT: { status: 400, retryable: false },
  },
});

class TestError extends FlowForgeError<TestCode> {
  readonly detail: string | undefined;
  constructor(code: TestCode, message: string, options?: ErrorOptions & { detail?: string }) {
    super(CATALOG, code, message, options);
    this.detail = options?.detail;
  }
}
const isTestError: ErrorGuard<TestError> = errorGuard(TestError);

class OtherError extends FlowForgeError<'UNAVAILABLE'> {
  constructor() {
    super(
      defineErrors({
        source: '@acme/other',
        name: 'OtherError',
        codes: { UNAVAILABLE: { status: 503, retryable: true } },
      }),
      'UNAVAILABLE',
      'down',
    );
  }
}

describe('FlowForgeError', () => {
  it('carries code, source, status and retryable from the catalog, and the prefixed message', () => {
    const cause = new Error('socket closed');
    const error = new TestError('UNAVAILABLE', 'no connection', { cause, detail: 'x' });
    expect(error).toBeInstanceOf(Error);
    expect(error.name).toBe('TestError');
    expect(error.message).toBe('@acme/test: no connection');
    expect(error.reason).toBe('no connection');
    expect(error.code).toBe('UNAVAILABLE');
    expect(error.source).toBe('@acme/test');
    expect(error.status).toBe(503);
    expect(error.retryable).toBe(true);
    expect(error.clientSafe).toBe(false);
    expect(error.cause).toBe(cause);
    expect(error.detail).toBe('x');
    expect(new TestError('BAD_INPUT', 'no').retryable).toBe(false);
    expect(new TestError('BAD_INPUT', 'no').status).toBe(400);
  });

  it('has no own cause when none was given', () => {
    expect(Object.hasOwn(new TestError('BAD_INPUT', 'no'), 'cause')).toBe(false);
  });

  it('answers 500 and not retryable for a code the catalog lacks (a caller outside TypeScript)', () => {
    const error = new TestError('NOPE' as TestCode, 'what');
    expect(error.status).toBe(500);
    expect(error.retryable).toBe(false);
  });
});

describe('defineErrors', () => {
  it('freezes the catalog', () => {
    expect(Object.isFrozen(CATALOG)).toBe(true);
    expect(Object.isFrozen(CATALOG.codes)).toBe(true);
    expect(Object.isFrozen(CATALOG.codes.UNAVAILABLE)).toBe(true);
    expect(CATALOG.clientSafe).toBe(false);
  });

  it('refuses a status outside 400–599, a code not in UPPER_SNAKE_CASE, a missing retryable', () => {
    const define = (codes: Record<string, unknown>): unknown =>
      defineErrors({ source: 's', name: 'E', codes: codes as never });
    expect(() => define({ OK: { status: 200, retryable: false } })).toThrow(
      'E: OK has status 200, not 400–599',
    );
    expect(() => define({ OK: { status: 400.5, retryable: false } })).toThrow(TypeError);
    expect(() => define({ bad: { status: 400, retryable: false } })).toThrow('UPPER_SNAKE_CASE');
    expect(() => define({ OK: { status: 400 } })).toThrow('no boolean retryable');
  });

  it('gives shared codes one meaning: sharedErrorKinds spreads them, a different kind is refused', () => {
    const catalog = defineErrors({
      source: 's',
      name: 'E',
      codes: {
        ...sharedErrorKinds('UNAVAILABLE', 'INVALID_OPTIONS', 'PERMISSION_DENIED'),
        OWN: { status: 409, retryable: false },
      },
    });
    expect(catalog.codes).toEqual({
      UNAVAILABLE: { status: 503, retryable: true },
      INVALID_OPTIONS: { status: 500, retryable: false },
      PERMISSION_DENIED: { status: 500, retryable: false },
      OWN: { status: 409, retryable: false },
    });
    expect(() =>
      defineErrors({
        source: 's',
        name: 'E',
        codes: { TIMEOUT: { status: 504, retryable: true } },
      }),
    ).toThrow(
      "E: TIMEOUT means 503, retryable in every package; use sharedErrorKinds('TIMEOUT') or another name",
    );
    expect(() =>
      defineErrors({ source: 's', name: 'E', codes: { CLOSED: { status: 503, retryable: true } } }),
    ).toThrow('E: CLOSED means 503, not retryable in every package');
  });

  it('keeps clientSafe when set', () => {
    const safe = defineErrors({
      source: 's',
      name: 'E',
      clientSafe: true,
      codes: { X: { status: 401, retryable: false } },
    });
    expect(new FlowForgeError(safe, 'X', 'm').clientSafe).toBe(true);
  });
});

describe('guards', () => {
  it('errorGuard matches its class and, given codes, only those', () => {
    const error = new TestError('UNAVAILABLE', 'down');
    expect(isTestError(error)).toBe(true);
    expect(isTestError(error, 'UNAVAILABLE')).toBe(true);
    expect(isTestError(error, 'BAD_INPUT')).toBe(false);
    expect(isTestError(new OtherError())).toBe(false);
    expect(isTestError(new Error('x'))).toBe(false);
    expect(isTestError(undefined)).toBe(false);
  });

  it('isFlowForgeError matches every package error, and a copy of the kernel, by a registered symbol', () => {
    expect(isFlowForgeError(new TestError('UNAVAILABLE', 'down'))).toBe(true);
    expect(isFlowForgeError(new OtherError(), 'UNAVAILABLE')).toBe(true);
    expect(isFlowForgeError(new OtherError(), 'BAD_INPUT')).toBe(false);
    expect(isFlowForgeError(new Error('x'))).toBe(false);
    expect(isFlowForgeError(null)).toBe(false);
    expect(isFlowForgeError('UNAVAILABLE')).toBe(false);
    // What a second copy of the kernel's class looks like from here.
    const foreign = Object.create(
      Object.defineProperty({}, Symbol.for('@flowforge/kernel.FlowForgeError'), { value: true }),
    ) as object;
    expect(isFlowForgeError(Object.assign(foreign, { code: 'X' }), 'X')).toBe(true);
    // A plain object claiming the brand under another symbol does not pass.
    expect(isFlowForgeError({ [Symbol('@flowforge/kernel.FlowForgeError')]: true })).toBe(false);
  });
});
