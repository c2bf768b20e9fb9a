import { describe, expect, it } from 'vitest';
import { createMetrics, renderMetrics } from '../metrics/metrics.js';
import { silentLogger } from '../testing/silent-logger.js';
import { createGuard } from './guard.js';

describe('createGuard', () => {
  it('counts failures by handler, from 0 for every handler that ran', async () => {
    const metrics = createMetrics({ service: 's', instance: 'i', defaultMetrics: false });
    const guard = createGuard({ logger: silentLogger, metrics });
    const recovered: unknown[] = [];
    guard.run('message', () => 'fine');
    guard.run(
      'deliver',
      () => {
        throw new Error('bug');
      },
      (err) => recovered.push(err),
    );
    guard.run('deliver', () => Promise.reject(new Error('async bug')));
    await new Promise((resolve) => setImmediate(resolve));
    const body = (await renderMetrics(metrics.registry)).body;
    expect(body).toMatch(/^handler_errors_total\{handler="message"[^}]*\} 0$/m);
    expect(body).toMatch(/^handler_errors_total\{handler="deliver"[^}]*\} 2$/m);
    expect(recovered).toHaveLength(1);
  });

  it('starts the handlers it is told of at 0 (those that fail only through fail())', async () => {
    const metrics = createMetrics({ service: 's', instance: 'i', defaultMetrics: false });
    const guard = createGuard({ logger: silentLogger, metrics, handlers: ['prompt'] });
    expect((await renderMetrics(metrics.registry)).body).toMatch(
      /^handler_errors_total\{handler="prompt"[^}]*\} 0$/m,
    );
    guard.fail('prompt', new Error('bug'));
    expect((await renderMetrics(metrics.registry)).body).toMatch(
      /^handler_errors_total\{handler="prompt"[^}]*\} 1$/m,
    );
  });
});
