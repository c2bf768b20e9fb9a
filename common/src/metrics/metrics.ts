import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export { Registry } from 'prom-client';
export type { Counter, Gauge, Histogram } from 'prom-client';

/** Latency buckets in seconds, from sub-millisecond relay hops to multi-second model calls. */
export const LATENCY_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
];

/** Buckets for counts of entries (replay logs, histories): their caps are in the hundreds to thousands. */
export const SIZE_BUCKETS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000];

export interface MetricsOptions {
  service: string;
  instance: string;
  /** Node.js process metrics (CPU, memory, event loop lag). @default true */
  defaultMetrics?: boolean;
}

interface MetricSpec<L extends string> {
  name: string;
  help: string;
  labelNames?: readonly L[];
}

/**
 * One registry per process, passed to whatever records metrics. Metrics are get-or-create, so two
 * modules asking for the same name share one series instead of throwing "already registered".
 */
export interface Metrics {
  readonly registry: Registry;
  counter<L extends string = string>(spec: MetricSpec<L>): Counter<L>;
  /**
   * `collect` runs at every scrape, before the gauge is read (prom-client awaits a promise). Only
   * the first registration's `collect` counts.
   */
  gauge<L extends string = string>(spec: MetricSpec<L> & { collect?: () => void | Promise<void> }): Gauge<L>;
  histogram<L extends string = string>(spec: MetricSpec<L> & { buckets?: number[] }): Histogram<L>;
}

export function createMetrics(options: MetricsOptions): Metrics {
  const registry = new Registry();
  registry.setDefaultLabels({ service: options.service, instance: options.instance });
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });

  function getOrCreate<M>(name: string, kind: string, make: () => M): M {
    const existing = registry.getSingleMetric(name);
    if (existing) {
      const existingKind = (existing as unknown as { type?: string }).type;
      if (existingKind !== kind) throw new Error(`metric ${name} already registered as ${existingKind}`);
      return existing as unknown as M;
    }
    return make();
  }

  return {
    registry,
    counter: (spec) =>
      getOrCreate(
        spec.name,
        'counter',
        () => new Counter({ ...spec, labelNames: spec.labelNames ?? [], registers: [registry] }),
      ),
    gauge: (spec) =>
      getOrCreate(
        spec.name,
        'gauge',
        () => new Gauge({ ...spec, labelNames: spec.labelNames ?? [], registers: [registry] }),
      ),
    histogram: (spec) =>
      getOrCreate(
        spec.name,
        'histogram',
        () =>
          new Histogram({
            ...spec,
            labelNames: spec.labelNames ?? [],
            buckets: spec.buckets ?? LATENCY_BUCKETS,
            registers: [registry],
          }),
      ),
  };
}

/**
 * `service_ready`: 1 while the process would answer `/ready` with 200, else 0. Each service sets it
 * from its readiness check when it is scraped; alerts tell "up but not ready" from "down" by it.
 */
export function readinessGauge(metrics: Metrics): Gauge {
  return metrics.gauge({
    name: 'service_ready',
    help: 'Whether /ready answers 200 (1) or 503 (0), as of this scrape: dependencies reachable and not draining',
  });
}

/**
 * Starts each of `values` at 0 under `label`, so its series exists before the first event: a
 * counter first seen at 1 hides that increment from `rate()`/`increase()` (and so from alerts), and
 * a dashboard shows 0 instead of "no data". For the closed sets of values a label takes.
 */
export function startAtZero<L extends string>(
  counter: Counter<L>,
  label: L,
  values: readonly string[],
): void {
  for (const value of values) counter.inc({ [label]: value } as Partial<Record<L, string>>, 0);
}

/** The `/metrics` answer, independent of the HTTP server (uWS on gateways, node:http elsewhere). */
export async function renderMetrics(registry: Registry): Promise<{ contentType: string; body: string }> {
  return { contentType: registry.contentType, body: await registry.metrics() };
}
