import { setTimeout as delay } from 'node:timers/promises';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../logging/logger.js';
import { createRecordingTracer, type RecordingTracer } from '../testing/recording-tracer.js';
import { noopTracer } from './tracer.js';

let recording: RecordingTracer | undefined;
afterEach(async () => {
  await recording?.close();
  recording = undefined;
});

describe('noopTracer (tracing off)', () => {
  it('hands out one shared span and no context, and runs functions as they are', () => {
    const a = noopTracer.startSpan('a', 'server');
    const b = noopTracer.startSpan('b', 'client', a);
    expect(b).toBe(a);
    const carrier: Record<string, string> = {};
    a.inject(carrier);
    expect(carrier).toEqual({});
    expect(
      noopTracer.extract({ traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' }),
    ).toBe(undefined);
    expect(noopTracer.withSpan(a, () => 42)).toBe(42);
    expect(noopTracer.logFields()).toEqual({});
  });
});

describe('the OpenTelemetry adapter', () => {
  it('links children to parents, in this process and through a carrier', () => {
    recording = createRecordingTracer('svc');
    const { tracer } = recording;
    const root = tracer.startSpan('root', 'server');
    const child = tracer.startSpan('child', 'producer', root);
    const headers: Record<string, string> = {};
    child.inject(headers);
    expect(headers.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    const remote = tracer.extract(headers);
    expect(remote).toBeDefined();
    const far = tracer.startSpan('far', 'consumer', remote);
    far.addEvent('first_token', { 'relay.ttft_ms': 3 });
    far.fail(new Error('boom'));
    for (const s of [far, child, root]) s.end();

    const spans = recording.spans();
    const byName = Object.fromEntries(spans.map((s) => [s.name, s]));
    expect(new Set(spans.map((s) => s.traceId)).size).toBe(1);
    expect(byName.root?.parentSpanId).toBeUndefined();
    expect(byName.child?.parentSpanId).toBe(byName.root?.spanId);
    expect(byName.far?.parentSpanId).toBe(byName.child?.spanId);
    expect(byName.far).toMatchObject({
      kind: 'consumer',
      failed: true,
      events: ['first_token', 'exception'],
    });
    expect(byName.root?.service).toBe('svc');
    expect(headers.traceparent).toContain(byName.child?.spanId);
  });

  it('ignores a carrier without a valid context (a new trace starts)', () => {
    recording = createRecordingTracer();
    const { tracer } = recording;
    expect(tracer.extract({})).toBeUndefined();
    expect(tracer.extract({ traceparent: '00-00000000000000000000000000000000-b7ad6b7169203331-01' })).toBe(
      undefined,
    );
    expect(tracer.extract({ traceparent: 'garbage' })).toBeUndefined();
  });

  it('puts the active span on log lines, also after an await, and nothing outside it', async () => {
    recording = createRecordingTracer();
    const { tracer } = recording;
    const lines: Array<Record<string, unknown>> = [];
    const destination = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const line of chunk.toString().split('\n').filter(Boolean))
          lines.push(JSON.parse(line) as Record<string, unknown>);
        cb();
      },
    });
    const logger = createLogger({
      service: 's',
      instance: 'i',
      destination,
      mixin: () => tracer.logFields(),
    });
    const span = tracer.startSpan('work', 'internal');
    await tracer.withSpan(span, async () => {
      logger.info('before');
      await delay(1);
      logger.info({ with: 'fields' }, 'after');
    });
    logger.info({ with: 'fields' }, 'outside');
    span.end();
    const [recorded] = recording.spans();
    expect(lines.map((l) => [l.msg, l.trace_id, l.span_id])).toEqual([
      ['before', recorded?.traceId, recorded?.spanId],
      ['after', recorded?.traceId, recorded?.spanId],
      ['outside', undefined, undefined],
    ]);
  });
});
