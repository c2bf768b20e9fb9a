import {
  createMemoryBus,
  createMemoryPubSubHub,
  createMemoryStore,
  createMetrics,
  hasTraceContext,
  splitTraceContext,
  type Tracer,
} from '@relay/common';
import {
  createRecordingTracer,
  silentLogger,
  uniqueName,
  waitFor,
  type RecordingTracer,
} from '@relay/common/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { createRelay } from './relay.js';

const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
const event = (type: string, fields: Record<string, unknown>) =>
  JSON.stringify({ v: 1, type, userid: 'alice', request_id: 'r1', ...fields });
const events = [
  event('delta', { seq: 0, delta: 'a' }),
  event('delta', { seq: 1, delta: 'b' }),
  event('delta', { seq: 2, delta: 'c' }),
  event('final', { content: 'abc', timestamp: 't', processing_time_ms: 5 }),
];

let recording: RecordingTracer | undefined;
const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
  await recording?.close();
  recording = undefined;
});

/** Relays `events` (with a traceparent header) and returns what the user channel carried. */
async function relayAll(tracer?: Tracer): Promise<string[]> {
  const bus = createMemoryBus({ defaultPartitions: 1 });
  await bus.connect();
  const hub = createMemoryPubSubHub();
  const topics = { responses: uniqueName('responses'), responsesDlq: uniqueName('responses.dlq') };
  const relay = createRelay({
    config: {
      kafka: { partitions: 1 },
      relay: { groupId: uniqueName('relay'), concurrency: 4 },
      delivery: { replayMaxEvents: 100, replayTtlMs: 60_000, dedupeTtlMs: 60_000 },
    },
    logger: silentLogger,
    metrics: createMetrics({ service: 'message-relay', instance: 'test', defaultMetrics: false }),
    bus,
    store: createMemoryStore(),
    pubsub: hub.client(),
    topics,
    ...(tracer ? { tracer } : {}),
  });
  cleanup.push(
    () => bus.close(),
    () => relay.close(),
  );
  const payloads: string[] = [];
  await hub.client().subscribe('user:alice', (payload) => payloads.push(payload));
  await relay.start();
  await bus.publish(
    topics.responses,
    events.map((value) => ({ key: 'alice', value, headers: { correlation_id: 'r1', traceparent } })),
  );
  await waitFor(() => payloads.length === events.length);
  return payloads;
}

describe('relay spans', () => {
  it('traces the first delta and the final: process → replay append + user channel publish', async () => {
    recording = createRecordingTracer('message-relay');
    const payloads = await relayAll(recording.tracer);
    await waitFor(() => recording?.spans().length === 6);
    const spans = recording.spans();
    const processes = spans.filter((s) => s.name.endsWith(' process'));
    expect(processes.map((s) => s.attributes['relay.event_type'])).toEqual(['delta', 'final']);
    for (const p of processes) {
      expect(p).toMatchObject({ kind: 'consumer', parentSpanId: 'b7ad6b7169203331' });
      expect(p.traceId).toBe('0af7651916cd43dd8448eb211c80319c');
      expect(p.attributes).toMatchObject({ 'relay.request_id': 'r1', 'relay.duplicate': 'no' });
      const children = spans.filter((s) => s.parentSpanId === p.spanId).map((s) => [s.name, s.kind]);
      expect(children).toEqual([
        ['replay append', 'client'],
        ['user channel publish', 'producer'],
      ]);
    }
    // Traced frames carry the publish span's context in front; the others are the frame alone.
    expect(payloads.map(hasTraceContext)).toEqual([true, false, false, true]);
    const publishes = spans.filter((s) => s.name === 'user channel publish');
    for (const [i, at] of [0, 3].entries()) {
      const { frame, carrier } = splitTraceContext(payloads[at] ?? '');
      expect(carrier.traceparent).toBe(`00-${publishes[i]?.traceId}-${publishes[i]?.spanId}-01`);
      expect(frame.startsWith('{"type":')).toBe(true);
    }
  });

  it('tracing off: the channel carries the frames exactly as before, no span', async () => {
    const payloads = await relayAll();
    expect(payloads.map(hasTraceContext)).toEqual([false, false, false, false]);
    expect(payloads.map((p) => (JSON.parse(p) as { type: string }).type)).toEqual([
      'response.delta',
      'response.delta',
      'response.delta',
      'response',
    ]);
  });
});
