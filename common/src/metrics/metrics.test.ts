import { describe, expect, it } from 'vitest';
import { createMetrics, readinessGauge, renderMetrics, startAtZero } from './metrics.js';

describe('metrics', () => {
  it('labels every series with service and instance and includes default process metrics', async () => {
    const m = createMetrics({ service: 'gw', instance: 'gw-1' });
    m.counter({ name: 'frames_total', help: 'frames', labelNames: ['type'] }).inc({ type: 'response' });
    const { contentType, body } = await renderMetrics(m.registry);
    expect(contentType).toContain('text/plain');
    expect(body).toContain('frames_total{type="response",service="gw",instance="gw-1"} 1');
    expect(body).toContain('process_cpu_user_seconds_total');
  });

  it('get-or-create returns the same metric for the same name', () => {
    const m = createMetrics({ service: 's', instance: 'i', defaultMetrics: false });
    const a = m.histogram({ name: 'latency_seconds', help: 'h' });
    const b = m.histogram({ name: 'latency_seconds', help: 'h' });
    expect(a).toBe(b);
    expect(() => m.counter({ name: 'latency_seconds', help: 'h' })).toThrow(
      /already registered as histogram/,
    );
  });

  it('registries are per process object, not global', async () => {
    const one = createMetrics({ service: 'a', instance: '1', defaultMetrics: false });
    const two = createMetrics({ service: 'b', instance: '2', defaultMetrics: false });
    one.gauge({ name: 'only_in_one', help: 'g' }).set(1);
    expect((await renderMetrics(two.registry)).body).not.toContain('only_in_one');
  });

  it('startAtZero makes a series per value before the first event', async () => {
    const m = createMetrics({ service: 's', instance: 'i', defaultMetrics: false });
    const dlq = m.counter({ name: 'dlq_total', help: 'h', labelNames: ['reason'] });
    startAtZero(dlq, 'reason', ['invalid', 'timeout']);
    dlq.inc({ reason: 'timeout' });
    startAtZero(dlq, 'reason', ['timeout']);
    const { body } = await renderMetrics(m.registry);
    expect(body).toContain('dlq_total{reason="invalid",service="s",instance="i"} 0');
    expect(body).toContain('dlq_total{reason="timeout",service="s",instance="i"} 1');
  });

  it('readinessGauge is one service_ready series per registry', async () => {
    const m = createMetrics({ service: 's', instance: 'i', defaultMetrics: false });
    readinessGauge(m).set(1);
    readinessGauge(m).set(0);
    expect((await renderMetrics(m.registry)).body).toMatch(/^service_ready\{service="s",instance="i"\} 0$/m);
  });
});
