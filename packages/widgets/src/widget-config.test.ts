import { describe, expect, it } from 'vitest';
import { isWidgetError, type WidgetErrorCode } from './errors.js';
import {
  WIDGET_CONFIG_MAX_BYTES,
  WIDGET_CONFIG_MAX_DEPTH,
  checkWidgetConfig,
} from './widget-config.js';

/** `checkWidgetConfig(kind, config)` fails with `code` (a 400) and a reason that contains `words`. */
function refused(kind: unknown, config: unknown, code: WidgetErrorCode, words?: string): void {
  let thrown: unknown;
  try {
    checkWidgetConfig(kind, config);
  } catch (error) {
    thrown = error;
  }
  expect(isWidgetError(thrown, code), `${String(thrown)}`).toBe(true);
  if (!isWidgetError(thrown)) return;
  expect(thrown.status).toBe(400);
  if (words !== undefined) expect(thrown.reason).toContain(words);
}

/** `{ a: { a: … { a: leaf } } }` with `levels` objects, the outermost included. */
function nestedObjects(levels: number, leaf: unknown = 1): Record<string, unknown> {
  let value: unknown = leaf;
  for (let level = 0; level < levels; level++) value = { a: value };
  return value as Record<string, unknown>;
}

/** `{ x: [[…[]…]] }` with `arrays` arrays inside the config object. */
function nestedArrays(arrays: number): Record<string, unknown> {
  let value: unknown[] = [];
  for (let level = 1; level < arrays; level++) value = [value];
  return { x: value };
}

describe('checkWidgetConfig', () => {
  it('accepts each kind with a config that follows its rules, and answers the JSON it stores', () => {
    const metric = { metric: 'orders.count', days: 30, title: 'Orders', colors: ['#f00'] };
    expect(checkWidgetConfig('metric', metric)).toEqual({
      kind: 'metric',
      config: metric,
      configJson: JSON.stringify(metric),
    });
    expect(checkWidgetConfig('live', { view: 'demo.orders_live' }).kind).toBe('live');
    // The rules bind fields that are present; the UI may save a widget before choosing them.
    expect(checkWidgetConfig('metric', {}).configJson).toBe('{}');
    expect(checkWidgetConfig('live', {}).configJson).toBe('{}');
  });

  it('refuses a kind that is not exactly one of its kinds: no array, no case folding, no coercion', () => {
    for (const kind of [['metric'], ['live'], 'Metric', ' metric', 'pie', '', null, undefined, 1]) {
      refused(kind, {}, 'WIDGET_CONFIG_INVALID', '`kind` must be one of: metric, live');
    }
    // The bypass of issue 16 row 3: a coerced kind must not skip the metric rules.
    refused(['metric'], { metric: "x' OR 1=1 --" }, 'WIDGET_CONFIG_INVALID', '`kind`');
  });

  it("applies each kind's rules to its config, as widgetConfigSchemas state them", () => {
    refused('metric', { metric: "x' OR 1=1 --" }, 'WIDGET_CONFIG_INVALID', '`config.metric`');
    refused('metric', { metric: ['orders'] }, 'WIDGET_CONFIG_INVALID', '`config.metric`');
    refused('metric', { metric: null }, 'WIDGET_CONFIG_INVALID', '`config.metric`');
    for (const days of [0, 367, 1.5, '7', null]) {
      refused('metric', { metric: 'orders', days }, 'WIDGET_CONFIG_INVALID', '`config.days`');
    }
    refused('live', { view: 'orders; drop table x' }, 'WIDGET_CONFIG_INVALID', '`config.view`');
    refused('live', { view: 42 }, 'WIDGET_CONFIG_INVALID', '`config.view`');
  });

  it('refuses a config that is not a plain JSON object, or holds what JSON cannot say', () => {
    for (const config of [null, [], 'x', 1, new Date(), new Map(), undefined]) {
      refused('metric', config, 'WIDGET_CONFIG_INVALID', 'must be a JSON object');
    }
    for (const value of [Number.NaN, Infinity, undefined, () => 1, 1n, new Date(0), Symbol('s')]) {
      refused('metric', { deep: [{ value }] }, 'WIDGET_CONFIG_INVALID', 'only JSON values');
    }
  });

  it('refuses text PostgreSQL jsonb refuses (U+0000, an unpaired surrogate), in values and keys', () => {
    refused('live', { label: 'a\u0000b' }, 'WIDGET_CONFIG_INVALID', 'U+0000');
    refused('live', { label: ['\ud800'] }, 'WIDGET_CONFIG_INVALID', 'U+0000');
    refused('live', { ['k\u0000']: 1 }, 'WIDGET_CONFIG_INVALID', 'U+0000');
    expect(checkWidgetConfig('live', { label: '😀 ü' }).configJson).toBe('{"label":"😀 ü"}');
  });

  it(`takes ${WIDGET_CONFIG_MAX_DEPTH} levels of nesting and refuses one more, naming the limit`, () => {
    expect(checkWidgetConfig('metric', nestedObjects(WIDGET_CONFIG_MAX_DEPTH)).kind).toBe('metric');
    expect(checkWidgetConfig('metric', nestedArrays(WIDGET_CONFIG_MAX_DEPTH - 1)).kind).toBe(
      'metric',
    );
    refused(
      'metric',
      nestedObjects(WIDGET_CONFIG_MAX_DEPTH + 1),
      'WIDGET_CONFIG_TOO_DEEP',
      `${WIDGET_CONFIG_MAX_DEPTH} levels`,
    );
    refused('metric', nestedArrays(WIDGET_CONFIG_MAX_DEPTH), 'WIDGET_CONFIG_TOO_DEEP');
  });

  it('refuses a config nested 10,000 and 1,000,000 deep with a WidgetError, never a RangeError', () => {
    // JSON.stringify overflows the stack on the first of these: the check must not recurse.
    const tenThousand = JSON.parse(`{"x":${'['.repeat(10_000)}${']'.repeat(10_000)}}`) as unknown;
    expect(() => JSON.stringify(tenThousand)).toThrow(RangeError);
    refused('metric', tenThousand, 'WIDGET_CONFIG_TOO_DEEP');
    refused('live', nestedObjects(1_000_000), 'WIDGET_CONFIG_TOO_DEEP');
    // A cycle never ends as JSON: it is refused by the same bound.
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    refused('live', cycle, 'WIDGET_CONFIG_TOO_DEEP');
  });

  it(`takes ${WIDGET_CONFIG_MAX_BYTES} bytes of JSON and refuses one more, counted in UTF-8`, () => {
    // {"pad":"…"} is 10 bytes around the text.
    const fits = { pad: 'x'.repeat(WIDGET_CONFIG_MAX_BYTES - 10) };
    expect(checkWidgetConfig('metric', fits).configJson).toHaveLength(WIDGET_CONFIG_MAX_BYTES);
    refused(
      'metric',
      { pad: 'x'.repeat(WIDGET_CONFIG_MAX_BYTES - 9) },
      'WIDGET_CONFIG_TOO_LARGE',
      `${WIDGET_CONFIG_MAX_BYTES + 1} bytes as JSON; at most ${WIDGET_CONFIG_MAX_BYTES}`,
    );
    // 'ü' is one UTF-16 unit but two UTF-8 bytes: the limit is bytes.
    refused(
      'metric',
      { pad: 'ü'.repeat(WIDGET_CONFIG_MAX_BYTES / 2) },
      'WIDGET_CONFIG_TOO_LARGE',
      `${WIDGET_CONFIG_MAX_BYTES + 10} bytes`,
    );
    // The 1 MB configs of issue 16 row 2.
    refused('live', { blob: 'x'.repeat(1_000_000) }, 'WIDGET_CONFIG_TOO_LARGE');
  });
});
