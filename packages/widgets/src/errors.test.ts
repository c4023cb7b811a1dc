import { isFlowForgeError } from '@flowforge/kernel';
import { describe, expect, it } from 'vitest';
import { WidgetError, isWidgetError, type WidgetErrorCode } from './errors.js';

describe('WidgetError', () => {
  it('answers each code with its HTTP status and retryability', () => {
    const table: Record<WidgetErrorCode, [status: number, retryable: boolean]> = {
      WIDGET_ID_INVALID: [400, false],
      WIDGET_NOT_FOUND: [404, false],
      WIDGET_NOT_QUERYABLE: [409, false],
      WIDGET_CONFIG_INVALID: [400, false],
      WIDGET_CONFIG_TOO_LARGE: [400, false],
      WIDGET_CONFIG_TOO_DEEP: [400, false],
      NOT_CONFIGURED: [503, false],
      INVALID_OPTIONS: [500, false],
    };
    for (const [code, [status, retryable]] of Object.entries(table)) {
      const error = new WidgetError(code as WidgetErrorCode, 'x');
      expect([code, error.status, error.retryable]).toEqual([code, status, retryable]);
    }
  });

  it('is client-safe, prefixed, and carries its cause', () => {
    const cause = new Error('behind it');
    const error = new WidgetError('WIDGET_NOT_QUERYABLE', 'no view', { cause });
    expect(error.name).toBe('WidgetError');
    expect(error.message).toBe('@flowforge/widgets: no view');
    expect(error.reason).toBe('no view');
    expect(error.source).toBe('@flowforge/widgets');
    expect(error.clientSafe).toBe(true);
    expect(error.cause).toBe(cause);
  });

  it('is recognised by isWidgetError (optionally by code) and by the kernel', () => {
    const error = new WidgetError('NOT_CONFIGURED', 'set CLICKHOUSE_URL.');
    expect(isWidgetError(error)).toBe(true);
    expect(isWidgetError(error, 'NOT_CONFIGURED', 'WIDGET_NOT_QUERYABLE')).toBe(true);
    expect(isWidgetError(error, 'WIDGET_NOT_QUERYABLE')).toBe(false);
    expect(isWidgetError(new Error('x'))).toBe(false);
    expect(isFlowForgeError(error, 'NOT_CONFIGURED')).toBe(true);
  });
});
