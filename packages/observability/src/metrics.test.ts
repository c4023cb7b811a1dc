import { register as globalRegistry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { ObservabilityError } from './errors.js';
import { createMetrics, OVERFLOW_LABEL_VALUE } from './metrics.js';

const lines = async (metrics: ReturnType<typeof createMetrics>) =>
  (await metrics.render()).split('\n').filter((line) => line !== '');

describe('createMetrics', () => {
  it('prefixes every name, default metrics included, and stays off the global registry', async () => {
    const metrics = createMetrics();
    metrics.counter({ name: 'things_total', help: 'Things.' }).inc();
    const text = await lines(metrics);
    expect(text).toContain('flowforge_things_total 1');
    expect(text.some((line) => line.startsWith('flowforge_process_cpu_user_seconds_total'))).toBe(
      true,
    );
    expect(text.some((line) => line.startsWith('flowforge_nodejs_eventloop_lag_seconds'))).toBe(
      true,
    );
    for (const line of text) {
      const name = line.startsWith('#') ? line.split(' ')[2] : line;
      expect(name, line).toMatch(/^flowforge_/);
    }
    expect(await globalRegistry.metrics()).not.toContain('flowforge_');
  });

  it('keeps a name that already has the prefix', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    metrics.gauge({ name: 'flowforge_pool_size', help: 'Pool.' }).set(3);
    expect(await lines(metrics)).toContain('flowforge_pool_size 3');
  });

  it('gives two registries their own metrics', async () => {
    const a = createMetrics({ defaultMetrics: false });
    const b = createMetrics({ defaultMetrics: false });
    a.counter({ name: 'x_total', help: 'X.' }).inc(2);
    b.counter({ name: 'x_total', help: 'X.' }).inc(5);
    expect(await lines(a)).toContain('flowforge_x_total 2');
    expect(await lines(b)).toContain('flowforge_x_total 5');
  });

  it('returns the same metric when the same one is declared twice', () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const config = { name: 'queries_total', help: 'Queries.', labelNames: ['operation'] } as const;
    expect(metrics.counter(config)).toBe(metrics.counter({ ...config }));
    const buckets = [0.1, 1];
    expect(metrics.histogram({ name: 'h', help: 'H.', buckets })).toBe(
      metrics.histogram({ name: 'h', help: 'H.', buckets }),
    );
  });

  it.each([
    [
      'another type',
      (m: ReturnType<typeof createMetrics>) =>
        m.gauge({ name: 'queries_total', help: 'Queries.', labelNames: ['operation'] }),
    ],
    [
      'other labels',
      (m: ReturnType<typeof createMetrics>) =>
        m.counter({ name: 'queries_total', help: 'Queries.', labelNames: ['table'] }),
    ],
    [
      'no labels',
      (m: ReturnType<typeof createMetrics>) =>
        m.counter({ name: 'queries_total', help: 'Queries.' }),
    ],
    [
      'other help',
      (m: ReturnType<typeof createMetrics>) =>
        m.counter({ name: 'queries_total', help: 'Other.', labelNames: ['operation'] }),
    ],
  ])('fails with METRIC_CONFLICT when declared again with %s', (_label, redeclare) => {
    const metrics = createMetrics({ defaultMetrics: false });
    metrics.counter({ name: 'queries_total', help: 'Queries.', labelNames: ['operation'] });
    expect(() => redeclare(metrics)).toThrow(ObservabilityError);
    expect(() => redeclare(metrics)).toThrow(
      expect.objectContaining({
        code: 'METRIC_CONFLICT',
        message: expect.stringContaining('flowforge_queries_total') as string,
      }) as Error,
    );
  });

  describe('a METRIC_CONFLICT message says what differs between the two declarations', () => {
    const conflict = (declare: () => unknown): string => {
      try {
        declare();
      } catch (error) {
        expect(error).toBeInstanceOf(ObservabilityError);
        expect((error as ObservabilityError).code).toBe('METRIC_CONFLICT');
        return (error as ObservabilityError).message;
      }
      throw new Error('expected METRIC_CONFLICT');
    };

    it('type and labels', () => {
      const metrics = createMetrics({ defaultMetrics: false });
      metrics.counter({ name: 'x', help: 'X.', labelNames: ['route'] });
      expect(
        conflict(() => metrics.gauge({ name: 'x', help: 'X.', labelNames: ['route', 'method'] })),
      ).toBe(
        '@flowforge/observability: flowforge_x is already declared as a counter with labels [route]; ' +
          'this declaration asks for a gauge with labels [route, method]',
      );
    });

    it('labels only, including none', () => {
      const metrics = createMetrics({ defaultMetrics: false });
      metrics.counter({ name: 'queries_total', help: 'Queries.', labelNames: ['operation'] });
      expect(conflict(() => metrics.counter({ name: 'queries_total', help: 'Queries.' }))).toBe(
        '@flowforge/observability: flowforge_queries_total is already declared as a counter with labels [operation]; ' +
          'this declaration asks for a counter with no labels',
      );
    });

    it('help only: both help texts', () => {
      const metrics = createMetrics({ defaultMetrics: false });
      metrics.counter({ name: 'queries_total', help: 'Queries.', labelNames: ['operation'] });
      const message = conflict(() =>
        metrics.counter({ name: 'queries_total', help: 'Other.', labelNames: ['operation'] }),
      );
      expect(message).toBe(
        '@flowforge/observability: flowforge_queries_total is already declared as a counter with labels [operation] and help "Queries."; ' +
          'this declaration asks for a counter with labels [operation] and help "Other."',
      );
    });

    it('buckets only, and default buckets named as such', () => {
      const metrics = createMetrics({ defaultMetrics: false });
      metrics.histogram({ name: 'seconds', help: 'S.', buckets: [0.1, 1] });
      expect(
        conflict(() => metrics.histogram({ name: 'seconds', help: 'S.', buckets: [0.5] })),
      ).toContain(
        'already declared as a histogram with no labels and buckets [0.1, 1]; this declaration asks for a histogram with no labels and buckets [0.5]',
      );
      expect(conflict(() => metrics.histogram({ name: 'seconds', help: 'S.' }))).toContain(
        'this declaration asks for a histogram with no labels and default buckets',
      );
    });

    it('everything at once (buckets only where a side is a histogram)', () => {
      const metrics = createMetrics({ defaultMetrics: false });
      metrics.histogram({ name: 'seconds', help: 'S.', labelNames: ['a'], buckets: [1] });
      expect(
        conflict(() => metrics.counter({ name: 'seconds', help: 'T.', labelNames: ['b'] })),
      ).toContain(
        'already declared as a histogram with labels [a], help "S." and buckets [1]; ' +
          'this declaration asks for a counter with labels [b] and help "T."',
      );
    });

    it('a scrape-time metric against an ordinary one', () => {
      const metrics = createMetrics({ defaultMetrics: false });
      metrics.counter({ name: 'jobs_total', help: 'Jobs.' });
      expect(
        conflict(() =>
          metrics.collected({
            name: 'jobs_total',
            help: 'Jobs.',
            type: 'counter',
            collect: () => [],
          }),
        ),
      ).toContain(
        'already declared as a counter with no labels; this declaration asks for a collected counter with no labels',
      );
    });
  });

  it.each(['Bad-Name', '1abc', 'with space', ''])(
    'fails with METRIC_NAME_INVALID for %j',
    (name) => {
      const metrics = createMetrics({ defaultMetrics: false });
      expect(() => metrics.counter({ name, help: 'x' })).toThrow(
        expect.objectContaining({ code: 'METRIC_NAME_INVALID' }) as Error,
      );
    },
  );

  it('caps the distinct values of a label and counts what overflowed', async () => {
    const metrics = createMetrics({ defaultMetrics: false, maxLabelValues: 3 });
    const counter = metrics.counter({ name: 'hits_total', help: 'Hits.', labelNames: ['path'] });
    for (let i = 0; i < 1000; i += 1) {
      counter.labels(metrics.boundLabel('flowforge_hits_total', 'path', `/scan/${i}`)).inc();
    }
    // A value seen before the cap keeps its own series.
    counter.labels(metrics.boundLabel('flowforge_hits_total', 'path', '/scan/1')).inc();
    const text = await lines(metrics);
    const series = text.filter((line) => line.startsWith('flowforge_hits_total{'));
    expect(series).toEqual([
      'flowforge_hits_total{path="/scan/0"} 1',
      'flowforge_hits_total{path="/scan/1"} 2',
      'flowforge_hits_total{path="/scan/2"} 1',
      `flowforge_hits_total{path="${OVERFLOW_LABEL_VALUE}"} 997`,
    ]);
    expect(text).toContain(
      'flowforge_metrics_label_overflow_total{metric="flowforge_hits_total",label="path"} 997',
    );
  });
});

describe('collected metrics', () => {
  it('renders samples computed at scrape time', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    let size = 3;
    metrics.collected({
      name: 'pool_connections',
      help: 'Connections.',
      type: 'gauge',
      collect: () => [
        { labels: { state: 'idle' }, value: size },
        { labels: { state: 'busy' }, value: 1 },
      ],
    });
    expect(await lines(metrics)).toEqual([
      '# HELP flowforge_pool_connections Connections.',
      '# TYPE flowforge_pool_connections gauge',
      'flowforge_pool_connections{state="idle"} 3',
      'flowforge_pool_connections{state="busy"} 1',
    ]);
    size = 7;
    expect(await lines(metrics)).toContain('flowforge_pool_connections{state="idle"} 7');
  });

  it('conflicts with a different metric of the same name', () => {
    const metrics = createMetrics({ defaultMetrics: false });
    metrics.counter({ name: 'jobs_total', help: 'Jobs.' });
    expect(() =>
      metrics.collected({ name: 'jobs_total', help: 'Jobs.', type: 'counter', collect: () => [] }),
    ).toThrow(expect.objectContaining({ code: 'METRIC_CONFLICT' }) as Error);
  });
});
