import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { ObservabilityError } from './errors.js';

/** Every FlowForge metric name starts with this. */
export const METRIC_PREFIX = 'flowforge_';
/** The label value that stands for every value past a label's cap. */
export const OVERFLOW_LABEL_VALUE = 'OTHER';

// After the prefix: snake_case starting with a letter (stricter than Prometheus, on purpose).
const NAME_AFTER_PREFIX = /^[a-z][a-z0-9_]*$/;

/** How to declare a counter or gauge with {@link Metrics.counter} or {@link Metrics.gauge}. */
export interface MetricConfig<L extends string> {
  /** Name without the prefix (`db_query_duration_seconds`); a name that already has it is kept. */
  readonly name: string;
  /** The HELP text of the metric. */
  readonly help: string;
  /**
   * The fixed label names. Values are not capped for you: pass a value that can
   * come from outside (a route, a status) through {@link Metrics.boundLabel}.
   */
  readonly labelNames?: readonly L[];
}

/** How to declare a histogram with {@link Metrics.histogram}. */
export interface HistogramConfig<L extends string> extends MetricConfig<L> {
  /** Bucket upper bounds. @default prom-client's (0.005 … 10 s) */
  readonly buckets?: readonly number[];
}

/** One sample of a {@link Metrics.collected} metric. */
export interface MetricSample {
  /** The sample's value. */
  readonly value: number;
  /** The sample's labels; bound them with {@link Metrics.boundLabel} when they come from outside. */
  readonly labels?: Readonly<Record<string, string | number>>;
  /** For the lines of a histogram: `<name>_bucket`, `<name>_sum`, `<name>_count`. */
  readonly metricName?: string;
}

/** How to declare a scrape-time metric with {@link Metrics.collected}. */
export interface CollectedMetricConfig {
  /** Name without the prefix; a name that already has it is kept. */
  readonly name: string;
  /** The HELP text of the metric. */
  readonly help: string;
  /** The TYPE of the metric; a histogram's samples carry their own `metricName`. */
  readonly type: 'counter' | 'gauge' | 'histogram';
  /** Called at scrape time; returns every sample of the metric. */
  readonly collect: () => readonly MetricSample[];
}

/** Options of {@link createMetrics}. */
export interface MetricsOptions {
  /** Collect Node/process metrics (CPU, memory, event loop lag, GC) with the prefix. @default true */
  readonly defaultMetrics?: boolean;
  /**
   * Most distinct values one label of one metric may take; later values are
   * recorded as `OTHER` and counted in flowforge_metrics_label_overflow_total.
   * prom-client never evicts a series, so this is what bounds memory. @default 100
   */
  readonly maxLabelValues?: number;
}

/**
 * FlowForge's metrics: one registry of its own (never prom-client's global one),
 * every name prefixed `flowforge_`, declared through a small typed API.
 */
export interface Metrics {
  /** The prom-client registry, for a custom exporter. */
  readonly registry: Registry;
  /** Declares (or returns the already declared, identical) counter. @throws {ObservabilityError} METRIC_CONFLICT, METRIC_NAME_INVALID */
  counter<L extends string = never>(config: MetricConfig<L>): Counter<L>;
  /** Declares (or returns the already declared, identical) gauge. */
  gauge<L extends string = never>(config: MetricConfig<L>): Gauge<L>;
  /** Declares (or returns the already declared, identical) histogram. */
  histogram<L extends string = never>(config: HistogramConfig<L>): Histogram<L>;
  /**
   * Declares a metric whose samples are computed at scrape time, for hot paths
   * that keep their own tallies (no prom-client call per event) and for values
   * read from elsewhere (pool sizes). @throws {ObservabilityError} METRIC_CONFLICT
   */
  collected(config: CollectedMetricConfig): void;
  /**
   * Caps label values: returns `value` while the label has seen fewer than
   * `maxLabelValues` distinct values (or has seen this one), else `OTHER`.
   */
  boundLabel(metric: string, label: string, value: string): string;
  /** The Prometheus text exposition format content type. */
  readonly contentType: string;
  /** Renders every metric in the text exposition format. */
  render(): Promise<string>;
}

type Kind = 'counter' | 'gauge' | 'histogram' | `collected ${CollectedMetricConfig['type']}`;
/** What a declaration asks for; two declarations of one name must agree on all of it. */
interface Shape {
  readonly kind: Kind;
  readonly help: string;
  readonly labelNames: readonly string[];
  /** `undefined`: prom-client's default buckets (histograms) or none (the others). */
  readonly buckets: readonly number[] | undefined;
}
interface Declared extends Shape {
  readonly metric: Counter<string> | Gauge<string> | Histogram<string> | CollectedMetric;
}

const sameList = <T>(a: readonly T[] | undefined, b: readonly T[] | undefined): boolean =>
  a === b || (a !== undefined && b !== undefined && a.join('\u0000') === b.join('\u0000'));

/**
 * One side of a METRIC_CONFLICT message: its type and labels always, its help and
 * buckets where the two declarations differ in them ("a counter with labels
 * [route] and help "Requests."").
 */
function describeShape(shape: Shape, other: Shape): string {
  const parts = [
    shape.labelNames.length === 0 ? 'no labels' : `labels [${shape.labelNames.join(', ')}]`,
  ];
  if (shape.help !== other.help) parts.push(`help ${JSON.stringify(shape.help)}`);
  if (shape.kind === 'histogram' && !sameList(shape.buckets, other.buckets)) {
    parts.push(shape.buckets ? `buckets [${shape.buckets.join(', ')}]` : 'default buckets');
  }
  const last = parts.pop()!;
  return `a ${shape.kind} with ${parts.length > 0 ? `${parts.join(', ')} and ` : ''}${last}`;
}

/** The structural shape prom-client's Registry reads from a metric. */
interface CollectedMetric {
  readonly name: string;
  readonly help: string;
  readonly type: CollectedMetricConfig['type'];
  readonly aggregator: 'sum';
  get(): Promise<{
    name: string;
    help: string;
    type: string;
    aggregator: 'sum';
    values: readonly MetricSample[];
  }>;
  reset(): void;
}

/**
 * Creates the registry.
 *
 * @example
 * const metrics = createMetrics();
 * const queries = metrics.histogram({ name: 'db_query_duration_seconds', help: 'Query time', labelNames: ['operation'] });
 * queries.labels('select').observe(0.004);
 */
export function createMetrics(options: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  const maxLabelValues = options.maxLabelValues ?? 100;
  const declared = new Map<string, Declared>();
  const seen = new Map<string, Set<string>>();

  if (options.defaultMetrics ?? true) {
    collectDefaultMetrics({ register: registry, prefix: METRIC_PREFIX });
    // prom-client names these gauges *_total, which Prometheus reserves for
    // counters (promtool check metrics fails on them); the un-suffixed gauges
    // flowforge_nodejs_active_{handles,requests,resources} carry the same counts.
    for (const name of [
      'active_handles_total',
      'active_requests_total',
      'active_resources_total',
    ]) {
      registry.removeSingleMetric(`${METRIC_PREFIX}nodejs_${name}`);
    }
  }

  function declare<M extends Declared['metric']>(
    kind: Kind,
    config: HistogramConfig<string>,
    build: (name: string, labelNames: string[]) => M,
  ): M {
    const name = config.name.startsWith(METRIC_PREFIX)
      ? config.name
      : `${METRIC_PREFIX}${config.name}`;
    if (!NAME_AFTER_PREFIX.test(name.slice(METRIC_PREFIX.length))) {
      throw new ObservabilityError(
        'METRIC_NAME_INVALID',
        `"${config.name}" is not a valid metric name: use snake_case starting with a letter`,
      );
    }
    const labelNames = [...(config.labelNames ?? [])];
    const shape: Shape = {
      kind,
      help: config.help,
      labelNames,
      // Only a histogram has buckets (a JS caller may pass them to anything).
      buckets: kind === 'histogram' && config.buckets ? [...config.buckets] : undefined,
    };
    const existing = declared.get(name);
    if (existing) {
      const same =
        existing.kind === shape.kind &&
        existing.help === shape.help &&
        sameList(existing.labelNames, shape.labelNames) &&
        sameList(existing.buckets, shape.buckets);
      if (!same) {
        // Say what differs: two identical-looking descriptions would leave the reader guessing.
        throw new ObservabilityError(
          'METRIC_CONFLICT',
          `${name} is already declared as ${describeShape(existing, shape)}; this declaration asks for ${describeShape(shape, existing)}`,
        );
      }
      return existing.metric as M;
    }
    const metric = build(name, labelNames);
    declared.set(name, { ...shape, metric });
    return metric;
  }

  const overflow = (): Counter<'metric' | 'label'> =>
    metrics.counter({
      name: 'metrics_label_overflow_total',
      help: 'Label values recorded as OTHER because the label reached its cap of distinct values.',
      labelNames: ['metric', 'label'],
    });

  const metrics: Metrics = {
    registry,
    contentType: registry.contentType,
    counter: <L extends string>(config: MetricConfig<L>) =>
      declare(
        'counter',
        config,
        (name, labelNames) =>
          new Counter({ name, help: config.help, labelNames, registers: [registry] }),
      ),
    gauge: <L extends string>(config: MetricConfig<L>) =>
      declare(
        'gauge',
        config,
        (name, labelNames) =>
          new Gauge({ name, help: config.help, labelNames, registers: [registry] }),
      ),
    histogram: <L extends string>(config: HistogramConfig<L>) =>
      declare(
        'histogram',
        config,
        (name, labelNames) =>
          new Histogram({
            name,
            help: config.help,
            labelNames,
            registers: [registry],
            ...(config.buckets ? { buckets: [...config.buckets] } : {}),
          }),
      ),
    collected(config) {
      declare(`collected ${config.type}`, config, (name) => {
        const metric: CollectedMetric = {
          name,
          help: config.help,
          type: config.type,
          aggregator: 'sum',
          get: () =>
            Promise.resolve({
              name,
              help: config.help,
              type: config.type,
              aggregator: 'sum',
              values: config.collect(),
            }),
          reset: () => undefined,
        };
        registry.registerMetric(metric as unknown as Counter<string>);
        return metric;
      });
    },
    boundLabel(metric, label, value) {
      const key = `${metric}\u0000${label}`;
      let values = seen.get(key);
      if (values === undefined) {
        values = new Set();
        seen.set(key, values);
      }
      if (values.has(value)) return value;
      if (values.size < maxLabelValues) {
        values.add(value);
        return value;
      }
      overflow().labels(metric, label).inc();
      return OVERFLOW_LABEL_VALUE;
    },
    render: () => registry.metrics(),
  };
  return metrics;
}
