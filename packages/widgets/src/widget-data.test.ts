import { createLogger } from '@flowforge/observability';
import { describe, expect, it } from 'vitest';
import { isWidgetError } from './errors.js';
import { createWidgetDataReader, metricSelectionOf } from './widget-data.js';

/** Runs `fn` and returns what it threw (undefined when it did not throw). */
async function thrownBy(fn: () => unknown): Promise<unknown> {
  try {
    await fn();
  } catch (error) {
    return error;
  }
  return undefined;
}

const logger = createLogger({ level: 'silent' });
const TENANT = '7e2a4c10-5b3d-4f6e-8a90-00000000000a';
const WIDGET = '7e2a4c10-5b3d-4f6e-8a90-0000000000f1';

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
  ] as const)('refuses %s (409)', async (_what, kind, config) => {
    const thrown = await thrownBy(() => metricSelectionOf(kind, config));
    expect(isWidgetError(thrown, 'WIDGET_NOT_QUERYABLE')).toBe(true);
    expect((thrown as { status?: number }).status).toBe(409);
  });
});

describe('createWidgetDataReader', () => {
  it('without ClickHouse, refuses a metric read with NOT_CONFIGURED naming CLICKHOUSE_URL (503)', async () => {
    const reader = createWidgetDataReader({ clickhouse: null, cache: null, logger });
    const thrown = await thrownBy(() =>
      reader.read(TENANT, { id: WIDGET, kind: 'metric', config: { metric: 'orders' } }),
    );
    expect(isWidgetError(thrown, 'NOT_CONFIGURED')).toBe(true);
    expect(thrown).toMatchObject({
      status: 503,
      retryable: false,
      reason: 'ClickHouse is not configured: set CLICKHOUSE_URL.',
    });
  });

  it("checks the widget before the store: a live widget's read is a 409 even without ClickHouse", async () => {
    const reader = createWidgetDataReader({ clickhouse: null, cache: null, logger });
    const thrown = await thrownBy(() =>
      reader.read(TENANT, { id: WIDGET, kind: 'live', config: { view: 'orders' } }),
    );
    expect(isWidgetError(thrown, 'WIDGET_NOT_QUERYABLE')).toBe(true);
  });

  it.each([0, -1, 1.5, Number.NaN, 2_147_483_648, '30000'])(
    'refuses cacheTtlMs %s with INVALID_OPTIONS naming the option',
    async (cacheTtlMs) => {
      const thrown = await thrownBy(() =>
        createWidgetDataReader({
          clickhouse: null,
          cache: null,
          logger,
          cacheTtlMs: cacheTtlMs as number,
        }),
      );
      expect(isWidgetError(thrown, 'INVALID_OPTIONS')).toBe(true);
      expect((thrown as Error).message).toContain(
        'cacheTtlMs: expected a positive whole number from 1 to 2147483647',
      );
    },
  );
});
