import { RelayError, createMetrics } from '@relay/common';
import { silentLogger } from '@relay/common/testing';
import { describe, expect, it } from 'vitest';
import { createFallbackModel } from './fallback-model.js';
import type { ModelClient, StreamChatOptions, StreamChatResult } from './model-client.js';
import { CircuitOpenError, ModelCallError } from './upstream-errors.js';

/** A model that streams `deltas` and then resolves, or throws `error` after them. */
function fake(name: string, behaviour: { deltas?: string[]; error?: unknown }) {
  let calls = 0;
  const modes: Array<boolean | undefined> = [];
  const client: ModelClient = {
    breakerState: 'closed',
    async streamChat(_messages, options: StreamChatOptions): Promise<StreamChatResult> {
      calls++;
      modes.push(options.stream);
      // Without streaming there is no delta, only the content at the end.
      if (options.stream !== false) for (const d of behaviour.deltas ?? []) options.onDelta?.(d);
      if (behaviour.error) throw behaviour.error;
      return { content: (behaviour.deltas ?? []).join(''), finishReason: 'stop', attempts: 1, model: name };
    },
  };
  return { client, calls: () => calls, modes };
}

function setup(primaryError: unknown, primaryDeltas: string[] = []) {
  const metrics = createMetrics({ service: 't', instance: 't', defaultMetrics: false });
  const primary = fake('big', { deltas: primaryDeltas, error: primaryError });
  const fallback = fake('small', { deltas: ['from ', 'fallback'] });
  const model = createFallbackModel({
    primary: primary.client,
    fallback: fallback.client,
    names: { primary: 'big', fallback: 'small' },
    logger: silentLogger,
    metrics,
  });
  const seen: string[] = [];
  const run = (stream?: boolean) =>
    model.streamChat([{ role: 'user', content: 'hi' }], {
      onDelta: (d) => seen.push(d),
      ...(stream === undefined ? {} : { stream }),
    });
  return { primary, fallback, run, seen, metrics };
}

describe('fallback model', () => {
  it('answers with the fallback when the primary ran out of retries before any delta', async () => {
    const t = setup(new ModelCallError('upstream_unavailable', 'big', 4));
    const result = await t.run();
    expect(result).toMatchObject({ content: 'from fallback', model: 'small', attempts: 5 });
    expect(t.seen).toEqual(['from ', 'fallback']);
    expect(await t.metrics.registry.getSingleMetricAsString('ai_consumer_model_fallbacks_total')).toMatch(
      /reason="upstream_unavailable"[^}]*\} 1/,
    );
  });

  it('answers with the fallback when the primary breaker is open, and after timeouts', async () => {
    const open = setup(
      new ModelCallError('upstream_unavailable', 'big', 1, { cause: new CircuitOpenError(500) }),
    );
    expect(await open.run()).toMatchObject({ model: 'small' });
    expect(await open.metrics.registry.getSingleMetricAsString('ai_consumer_model_fallbacks_total')).toMatch(
      /reason="circuit_open"/,
    );
    expect(await setup(new ModelCallError('timeout', 'big', 2)).run()).toMatchObject({ model: 'small' });
  });

  it('does not restart a stream that broke after deltas, nor retry a rejected request elsewhere', async () => {
    const broke = setup(new ModelCallError('timeout', 'big', 1), ['Echo:']);
    await expect(broke.run()).rejects.toMatchObject({ code: 'timeout', model: 'big' });
    expect(broke.seen).toEqual(['Echo:']);
    expect(broke.fallback.calls()).toBe(0);
    const rejected = setup(new ModelCallError('upstream_error', 'big', 1));
    await expect(rejected.run()).rejects.toMatchObject({ code: 'upstream_error' });
    expect(rejected.fallback.calls()).toBe(0);
    const ours = setup(new RelayError('internal_error'));
    await expect(ours.run()).rejects.toMatchObject({ code: 'internal_error' });
    expect(ours.fallback.calls()).toBe(0);
  });

  it('answers with the primary when it can, never asking the fallback', async () => {
    const t = setup(undefined, ['primary']);
    expect(await t.run()).toMatchObject({ content: 'primary', model: 'big' });
    expect(t.fallback.calls()).toBe(0);
  });

  it('without streaming both are asked for a whole completion, and the fallback answers the same way', async () => {
    const t = setup(new ModelCallError('upstream_unavailable', 'big', 3));
    expect(await t.run(false)).toMatchObject({ content: 'from fallback', model: 'small', attempts: 4 });
    expect(t.primary.modes).toEqual([false]);
    expect(t.fallback.modes).toEqual([false]);
    expect(t.seen).toEqual([]);
  });
});
