import { jsonDepthExceeds } from '@flowforge/kernel';
import { WidgetError } from './errors.js';
import { VIEW_NAME_PATTERN } from './live-widgets.js';
import { WIDGET_KINDS, type WidgetKind } from './schema.js';
import { MAX_DAYS, METRIC_NAME_PATTERN } from './widget-data.js';

/**
 * The most bytes a widget's `config` may take: the UTF-8 length of its compact
 * JSON text (`JSON.stringify(config)`, what the `jsonb` column receives). A
 * dashboard lists its widgets with their configs, so this bounds what one list
 * page carries. 16 KiB.
 */
export const WIDGET_CONFIG_MAX_BYTES = 16_384;

/**
 * The deepest a widget's `config` may nest: the config object is level 1, each
 * object or array inside it one more. Deeper JSON would overflow the stack of
 * recursive code that handles it later (`JSON.stringify`, loggers), so it is
 * refused before anything recurses into it.
 */
export const WIDGET_CONFIG_MAX_DEPTH = 16;

/** What {@link checkWidgetConfig} answers: the widget's kind and config, checked. */
export interface CheckedWidgetConfig {
  /** One of {@link WIDGET_KINDS}, exactly as given. */
  readonly kind: WidgetKind;
  /** The config as given (not copied). */
  readonly config: Readonly<Record<string, unknown>>;
  /**
   * `config` as compact JSON text, at most {@link WIDGET_CONFIG_MAX_BYTES}
   * bytes: what the `widgets.config` column takes on insert or update.
   */
  readonly configJson: string;
}

const METRIC_NAME = new RegExp(METRIC_NAME_PATTERN);
const VIEW_NAME = new RegExp(VIEW_NAME_PATTERN);

/**
 * Checks a widget's `kind` and `config` before they are written, whatever
 * validated the request before (a route's JSON Schema may be loosened by type
 * coercion; this is the check that cannot be skipped): `kind` must be exactly
 * one of {@link WIDGET_KINDS} (a string: no array or other value is converted),
 * `config` a plain JSON object no deeper than {@link WIDGET_CONFIG_MAX_DEPTH}
 * and no larger than {@link WIDGET_CONFIG_MAX_BYTES}, following the rules of
 * {@link widgetConfigSchemas} for its kind. The depth is checked without
 * recursion, so a config nested 10,000 deep is refused like any other.
 *
 * @throws {WidgetError} WIDGET_CONFIG_INVALID (400) for an unknown `kind`, a `config` that is not a JSON object or breaks its kind's rules;
 *   WIDGET_CONFIG_TOO_DEEP (400) past the depth limit; WIDGET_CONFIG_TOO_LARGE (400) past the size limit
 * @example
 * const { kind, configJson } = checkWidgetConfig(request.body.kind, request.body.config ?? {});
 * await trx.insertInto('widgets').values({ dashboard_id, name, kind, config: configJson }).execute();
 */
export function checkWidgetConfig(kind: unknown, config: unknown): CheckedWidgetConfig {
  if (typeof kind !== 'string' || !(WIDGET_KINDS as readonly string[]).includes(kind)) {
    throw invalid(`The widget's \`kind\` must be one of: ${WIDGET_KINDS.join(', ')}.`);
  }
  if (!isPlainObject(config)) throw invalid("The widget's `config` must be a JSON object.");
  checkJsonTree(config);
  // Safe to recurse now: the tree is JSON and at most WIDGET_CONFIG_MAX_DEPTH deep.
  const configJson = JSON.stringify(config);
  const bytes = Buffer.byteLength(configJson, 'utf8');
  if (bytes > WIDGET_CONFIG_MAX_BYTES) {
    throw new WidgetError(
      'WIDGET_CONFIG_TOO_LARGE',
      `The widget's \`config\` takes ${bytes} bytes as JSON; at most ${WIDGET_CONFIG_MAX_BYTES} are allowed.`,
    );
  }
  const checked = kind as WidgetKind;
  if (checked === 'metric') checkMetricConfig(config);
  else checkLiveConfig(config);
  return { kind: checked, config, configJson };
}

/** `config.metric` and `config.days`, when present: the rules of `widgetConfigSchemas.metric`. */
function checkMetricConfig(config: Readonly<Record<string, unknown>>): void {
  if (Object.hasOwn(config, 'metric')) {
    const { metric } = config;
    if (typeof metric !== 'string' || !METRIC_NAME.test(metric)) {
      throw invalid(
        "The widget's `config.metric` must be a letter, then up to 99 letters, digits or `_ . : -`.",
      );
    }
  }
  if (Object.hasOwn(config, 'days')) {
    const { days } = config;
    if (typeof days !== 'number' || !Number.isInteger(days) || days < 1 || days > MAX_DAYS) {
      throw invalid(`The widget's \`config.days\` must be a whole number from 1 to ${MAX_DAYS}.`);
    }
  }
}

/** `config.view`, when present: the rule of `widgetConfigSchemas.live`. */
function checkLiveConfig(config: Readonly<Record<string, unknown>>): void {
  if (Object.hasOwn(config, 'view')) {
    const { view } = config;
    if (typeof view !== 'string' || !VIEW_NAME.test(view)) {
      throw invalid(
        "The widget's `config.view` must be a view name: `name` or `schema.name`, plain identifiers.",
      );
    }
  }
}

/**
 * Checks `root`'s depth first (the kernel's iterative check, which stops at the
 * first level past the limit, so a hostile depth costs nothing), then walks it
 * with an explicit stack: every value must be JSON that PostgreSQL's `jsonb` takes.
 */
function checkJsonTree(root: Readonly<Record<string, unknown>>): void {
  if (jsonDepthExceeds(root, WIDGET_CONFIG_MAX_DEPTH)) {
    throw new WidgetError(
      'WIDGET_CONFIG_TOO_DEEP',
      `The widget's \`config\` nests deeper than ${WIDGET_CONFIG_MAX_DEPTH} levels of objects and arrays.`,
    );
  }
  const pending: unknown[] = [root];
  while (pending.length > 0) {
    const value = pending.pop();
    if (typeof value === 'string') {
      checkText(value);
      continue;
    }
    if (value === null || typeof value === 'boolean') continue;
    if (typeof value === 'number') {
      // JSON.stringify would write NaN and Infinity as null: a different value than was given.
      if (!Number.isFinite(value)) throw notJson();
      continue;
    }
    const children = Array.isArray(value)
      ? (value as readonly unknown[])
      : isPlainObject(value)
        ? entriesOf(value)
        : undefined;
    if (children === undefined) throw notJson();
    for (const child of children) pending.push(child);
  }
}

/** An object's keys (checked here as text) and then its values, for the walk. */
function entriesOf(value: Readonly<Record<string, unknown>>): unknown[] {
  const values: unknown[] = [];
  for (const [key, child] of Object.entries(value)) {
    checkText(key);
    values.push(child);
  }
  return values;
}

/** PostgreSQL's `jsonb` refuses U+0000 and unpaired surrogates: refused here as a 400, not a database error. */
function checkText(text: string): void {
  if (text.includes('\u0000') || !text.isWellFormed()) {
    throw invalid(
      "The widget's `config` has text PostgreSQL cannot store (U+0000 or an unpaired surrogate).",
    );
  }
}

/** A JSON object as JSON.parse builds it: not an array, a class instance, a Date or a Map. */
function isPlainObject(value: unknown): value is Readonly<Record<string, unknown>> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const prototype: unknown = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

function invalid(reason: string): WidgetError {
  return new WidgetError('WIDGET_CONFIG_INVALID', reason);
}

function notJson(): WidgetError {
  return invalid(
    "The widget's `config` must hold only JSON values (text, finite numbers, true, false, null, arrays, objects).",
  );
}
