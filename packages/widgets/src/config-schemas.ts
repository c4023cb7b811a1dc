import { VIEW_NAME_PATTERN } from './live-widgets.js';
import { MAX_DAYS, METRIC_NAME_PATTERN } from './widget-data.js';

/** The JSON Schema of a metric widget's `config`: what its data is read from. */
export interface MetricConfigSchema {
  /** Always `object`. */
  readonly type: 'object';
  /** The fields the data model reads; any others are the UI's. */
  readonly properties: {
    /** The metric. */
    readonly metric: {
      /** Always `string`. */
      readonly type: 'string';
      /** {@link METRIC_NAME_PATTERN}. */
      readonly pattern: string;
    };
    /** Days back, today included (7 when absent). */
    readonly days: {
      /** Always `integer`. */
      readonly type: 'integer';
      /** 1. */
      readonly minimum: number;
      /** {@link MAX_DAYS}. */
      readonly maximum: number;
    };
  };
}

/** The JSON Schema of a live widget's `config`: the Materialize view it streams. */
export interface LiveConfigSchema {
  /** Always `object`. */
  readonly type: 'object';
  /** The fields the data model reads; any others are the UI's. */
  readonly properties: {
    /** The view. */
    readonly view: {
      /** Always `string`. */
      readonly type: 'string';
      /** {@link VIEW_NAME_PATTERN}. */
      readonly pattern: string;
    };
  };
}

/** {@link widgetConfigSchemas}: a JSON Schema per {@link WidgetKind}. */
export interface WidgetConfigSchemas {
  /** A metric widget's `config`. */
  readonly metric: MetricConfigSchema;
  /** A live widget's `config`. */
  readonly live: LiveConfigSchema;
}

/**
 * The rules of a widget's `config`, per kind, as JSON Schema (draft-07, what
 * Ajv and Fastify take): validate a widget body's `config` with them when it is
 * written, for the 400 and the OpenAPI document. A schema is not the last word:
 * a validator that coerces types can skip the `if` (`"kind": ["metric"]`), and
 * JSON Schema cannot bound size or depth; {@link checkWidgetConfig} applies
 * these rules and those limits in the handler, and cannot be skipped.
 * {@link metricSelectionOf} and {@link liveViewOf} apply the same rules again
 * when a widget is read.
 *
 * @example
 * const widgetBody = {
 *   type: 'object',
 *   // `enum` without `type`: no coercion can turn ["metric"] into "metric".
 *   properties: { kind: { enum: WIDGET_KINDS }, config: { type: 'object' } },
 *   allOf: WIDGET_KINDS.map((kind) => ({
 *     if: { properties: { kind: { const: kind } } },
 *     then: { properties: { config: widgetConfigSchemas[kind] } },
 *   })),
 * };
 */
export const widgetConfigSchemas: WidgetConfigSchemas = deepFreeze({
  metric: {
    type: 'object',
    properties: {
      metric: { type: 'string', pattern: METRIC_NAME_PATTERN },
      days: { type: 'integer', minimum: 1, maximum: MAX_DAYS },
    },
  },
  live: {
    type: 'object',
    properties: { view: { type: 'string', pattern: VIEW_NAME_PATTERN } },
  },
});

/** Shared by every app that imports it: nobody may loosen a rule for the others. */
function deepFreeze<T extends object>(value: T): T {
  for (const child of Object.values(value)) {
    if (typeof child === 'object' && child !== null) deepFreeze(child as object);
  }
  return Object.freeze(value);
}
