import { describe, expect, it } from 'vitest';
import { isAppError } from '../errors.js';
import { metricSelectionOf } from './widget-data.js';

describe('metricSelectionOf', () => {
  it('reads the metric and the day count, 7 days by default', () => {
    expect(metricSelectionOf('metric', { metric: 'orders' })).toEqual({
      metric: 'orders',
      days: 7,
    });
    expect(metricSelectionOf('metric', { metric: 'a.b:c-d_1', days: 366, title: 'x' })).toEqual({
      metric: 'a.b:c-d_1',
      days: 366,
    });
  });

  it.each([
    ['a live widget', 'live', { metric: 'orders' }],
    ['no metric', 'metric', {}],
    ['a metric that is not a plain name', 'metric', { metric: "orders' OR 1=1" }],
    ['an empty metric', 'metric', { metric: '' }],
    ['a metric of another type', 'metric', { metric: 42 }],
    ['zero days', 'metric', { metric: 'orders', days: 0 }],
    ['too many days', 'metric', { metric: 'orders', days: 367 }],
    ['fractional days', 'metric', { metric: 'orders', days: 1.5 }],
    ['days as a string', 'metric', { metric: 'orders', days: '7' }],
  ] as const)('refuses %s (409)', (_what, kind, config) => {
    let thrown: unknown;
    try {
      metricSelectionOf(kind, config);
    } catch (error) {
      thrown = error;
    }
    expect(isAppError(thrown, 'WIDGET_NOT_QUERYABLE')).toBe(true);
    expect((thrown as { status?: number }).status).toBe(409);
  });
});
