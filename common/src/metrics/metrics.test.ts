import { describe, expect, it } from 'vitest';
import { createMetrics, renderMetrics } from './metrics.js';

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
});
