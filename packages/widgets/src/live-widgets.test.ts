import { describe, expect, it } from 'vitest';
import { isWidgetError } from './errors.js';
import { liveViewOf } from './live-widgets.js';

describe('liveViewOf', () => {
  it('reads a view name, plain or schema-qualified', () => {
    expect(liveViewOf('live', { view: 'demo_orders', title: 'x' })).toBe('demo_orders');
    expect(liveViewOf('live', { view: 'public._Orders2' })).toBe('public._Orders2');
  });

  it.each([
    ['a metric widget', 'metric', { view: 'orders' }],
    ['no view', 'live', {}],
    ['a view of another type', 'live', { view: 42 }],
    ['a quoted name', 'live', { view: '"orders"' }],
    ['SQL after the name', 'live', { view: 'orders; drop table x' }],
    ['three parts', 'live', { view: 'db.schema.orders' }],
    ['a name starting with a digit', 'live', { view: '1orders' }],
    ['a name over 63 characters', 'live', { view: 'v'.repeat(64) }],
  ] as const)('refuses %s (409)', (_what, kind, config) => {
    let thrown: unknown;
    try {
      liveViewOf(kind, config);
    } catch (error) {
      thrown = error;
    }
    expect(isWidgetError(thrown, 'WIDGET_NOT_QUERYABLE')).toBe(true);
    expect((thrown as { status?: number }).status).toBe(409);
  });
});
