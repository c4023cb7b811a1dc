import { isFlowForgeError } from '@flowforge/kernel';
import { describe, expect, it } from 'vitest';
import { isObservabilityError, ObservabilityError, type ObservabilityErrorCode } from './errors.js';
import { createMetrics } from './metrics.js';

describe('ObservabilityError', () => {
  it.each<ObservabilityErrorCode>(['METRIC_NAME_INVALID', 'METRIC_CONFLICT'])(
    '%s is status 500 and not retryable (a bug of the declaring code)',
    (code) => {
      const error = new ObservabilityError(code, 'x');
      expect(error.status).toBe(500);
      expect(error.retryable).toBe(false);
      expect(isFlowForgeError(error, code)).toBe(true);
    },
  );

  it('prefixes the message with the package and keeps code and cause', () => {
    const cause = new Error('inner');
    const error = new ObservabilityError('METRIC_CONFLICT', 'boom', { cause });
    expect(error.message).toBe('@flowforge/observability: boom');
    expect(error.reason).toBe('boom');
    expect(error.name).toBe('ObservabilityError');
    expect(error.source).toBe('@flowforge/observability');
    expect(error.code).toBe('METRIC_CONFLICT');
    expect(error.cause).toBe(cause);
  });

  it('isObservabilityError narrows by code, as thrown by the registry', () => {
    const metrics = createMetrics({ defaultMetrics: false });
    let thrown: unknown;
    try {
      metrics.counter({ name: 'Not-Snake', help: 'X.' });
    } catch (error) {
      thrown = error;
    }
    expect(isObservabilityError(thrown)).toBe(true);
    expect(isObservabilityError(thrown, 'METRIC_NAME_INVALID')).toBe(true);
    expect(isObservabilityError(thrown, 'METRIC_CONFLICT')).toBe(false);
    expect(isObservabilityError(new Error('x'))).toBe(false);
    expect(isObservabilityError({ code: 'METRIC_CONFLICT' })).toBe(false);
  });
});
