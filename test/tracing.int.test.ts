/**
 * One message, one trace: the local stack with tracing on (the standard OTEL_* variables pointing
 * at an OTLP/HTTP receiver in this test), one streamed message through nginx, and the spans the
 * three services exported for it, checked as one connected tree with the expected parent links.
 */
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { serverFrameSchema } from '@relay/common';
import { waitFor } from '@relay/common/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { infraPaths } from '../scripts/infra/paths.js';
import { stackDown, stackToken, stackUp, stackUrls } from '../scripts/stack/testing.js';
import { connectClient, type TestClient } from '../websocket-server/src/testing/ws-client.js';

/** OTLP/HTTP JSON (ExportTraceServiceRequest), the parts read here. */
const anyValue = z.looseObject({
  stringValue: z.string().optional(),
  intValue: z.union([z.string(), z.number()]).optional(),
  doubleValue: z.number().optional(),
  boolValue: z.boolean().optional(),
});
const keyValues = z.array(z.object({ key: z.string(), value: anyValue })).default([]);
const exportRequest = z.object({
  resourceSpans: z.array(
    z.object({
      resource: z.object({ attributes: keyValues }),
      scopeSpans: z.array(
        z.object({
          spans: z.array(
            z.looseObject({
              traceId: z.string(),
              spanId: z.string(),
              parentSpanId: z.string().optional(),
              name: z.string(),
              kind: z.number(),
              attributes: keyValues,
              events: z.array(z.looseObject({ name: z.string() })).default([]),
            }),
          ),
        }),
      ),
    }),
  ),
});

interface ReceivedSpan {
  service: string;
  instance: string;
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  name: string;
  kind: number;
  attributes: Record<string, unknown>;
  events: string[];
}

/** OTLP JSON ids are hex; a base64 id (protobuf-style JSON) is turned into hex too. */
function hexId(id: string): string {
  return /^[0-9a-f]+$/.test(id) ? id : Buffer.from(id, 'base64').toString('hex');
}

function plain(value: z.infer<typeof anyValue>): unknown {
  return (
    value.stringValue ??
    (value.intValue !== undefined ? Number(value.intValue) : undefined) ??
    value.doubleValue ??
    value.boolValue
  );
}

const attributesOf = (kvs: z.infer<typeof keyValues>) =>
  Object.fromEntries(kvs.map(({ key, value }) => [key, plain(value)]));

/** An in-process OTLP/HTTP receiver: POST /v1/traces with JSON bodies, kept in `spans`. */
async function startReceiver(): Promise<{ url: string; spans: ReceivedSpan[]; server: Server }> {
  const spans: ReceivedSpan[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (
        req.method !== 'POST' ||
        req.url !== '/v1/traces' ||
        !req.headers['content-type']?.includes('json')
      ) {
        res.writeHead(400).end();
        return;
      }
      const body = exportRequest.parse(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      for (const rs of body.resourceSpans) {
        const resource = attributesOf(rs.resource.attributes);
        for (const ss of rs.scopeSpans) {
          for (const s of ss.spans) {
            spans.push({
              service: String(resource['service.name']),
              instance: String(resource['service.instance.id']),
              traceId: hexId(s.traceId),
              spanId: hexId(s.spanId),
              parentSpanId: s.parentSpanId ? hexId(s.parentSpanId) : undefined,
              name: s.name,
              kind: s.kind,
              attributes: attributesOf(s.attributes),
              events: s.events.map((e) => e.name),
            });
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('no receiver port');
  return { url: `http://127.0.0.1:${address.port}`, spans, server };
}

/** OTLP span kinds. */
const KIND = { internal: 1, server: 2, client: 3, producer: 4, consumer: 5 } as const;

describe('one message, one trace across gateway, ai-consumer and message-relay', () => {
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  const clients: TestClient[] = [];

  beforeAll(async () => {
    receiver = await startReceiver();
    // Settings only reach the services a stackUp starts: begin from a stopped stack.
    await stackDown();
    // Ports come from TEST_STACK_ENV or, where set, the process environment.
    await stackUp({
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_BSP_SCHEDULE_DELAY: '200',
      MOCK_OPENAI_TTFT_MS: '50',
      MOCK_OPENAI_TOKEN_MS: '5',
    });
  }, 240_000);

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    // Later files start the stack with their own settings (tracing off).
    await stackDown();
    await new Promise<void>((done) => (receiver ? receiver.server.close(() => done()) : done()));
  }, 120_000);

  it('exports one connected trace with the spans of every hop, and the client sees plain frames', async () => {
    const userid = `traced-${randomUUID()}`;
    const token = await stackToken(userid);
    const client = await connectClient(`${stackUrls().ws}?token=${encodeURIComponent(token)}&stream=1`);
    clients.push(client);
    const id = randomUUID();
    client.send({ type: 'message', id, content: 'Trace this message, please', userid });
    const final = await client.next((f) => f.type === 'response' && f.request_id === id, 30_000);

    // What the client got: JSON frames, the same fields as without tracing, no trace context.
    expect(client.frames.filter((f) => f.type === '(not json)')).toEqual([]);
    const deltas = client.frames.filter((f) => f.type === 'response.delta' && f.request_id === id);
    expect(deltas.length).toBeGreaterThan(0);
    expect(deltas.map((d) => d.delta).join('')).toBe(final.content);
    // Every frame is one of the contract's server frames, with no trace field added.
    for (const frame of client.frames) {
      expect(serverFrameSchema.safeParse(frame).success, JSON.stringify(frame)).toBe(true);
      expect(Object.keys(frame).filter((k) => /trace|span/i.test(k))).toEqual([]);
    }

    // The gateway's root span names the request; everything else of the trace hangs below it.
    const root = await waitFor(
      () => receiver.spans.find((s) => s.name === 'ws message' && s.attributes['relay.request_id'] === id),
      { timeoutMs: 15_000, message: 'the ws message span' },
    );
    const inTrace = () => receiver.spans.filter((s) => s.traceId === root.traceId);
    // 2 gateway spans at intake, 7 in the consumer, 3 per traced frame in the relay (first delta
    // and final), 1 per traced frame delivered by the gateway.
    await waitFor(() => inTrace().length >= 16, {
      timeoutMs: 15_000,
      message: () =>
        `16 spans in the trace, got ${inTrace()
          .map((s) => s.name)
          .join(', ')}`,
    });
    const spans = inTrace();
    expect(spans).toHaveLength(16);

    // ONE trace: every span about this request is in it, and it is connected (one root).
    for (const s of receiver.spans.filter((x) => x.attributes['relay.request_id'] === id)) {
      expect(s.traceId, s.name).toBe(root.traceId);
    }
    const byId = new Map(spans.map((s) => [s.spanId, s]));
    expect(spans.filter((s) => s.parentSpanId === undefined)).toEqual([root]);
    for (const s of spans) if (s !== root) expect(byId.has(s.parentSpanId ?? ''), s.name).toBe(true);
    expect(new Set(spans.map((s) => s.service))).toEqual(
      new Set(['websocket-server', 'ai-consumer', 'message-relay']),
    );

    const childrenOf = (parent: ReceivedSpan, name?: string) =>
      spans.filter((s) => s.parentSpanId === parent.spanId && (name === undefined || s.name === name));
    const only = (list: ReceivedSpan[], what: string): ReceivedSpan => {
      expect(list, what).toHaveLength(1);
      return list[0] as ReceivedSpan;
    };

    // gateway: ws message → incoming_messages publish
    expect(root).toMatchObject({ service: 'websocket-server', kind: KIND.server });
    expect(root.attributes['relay.outcome']).toBe('accepted');
    const produce = only(childrenOf(root), 'gateway produce');
    expect(produce).toMatchObject({ name: 'incoming_messages publish', kind: KIND.producer });

    // ai-consumer: incoming_messages process → waits, chat, publishes
    const processing = only(childrenOf(produce), 'consumer process');
    expect(processing).toMatchObject({
      name: 'incoming_messages process',
      service: 'ai-consumer',
      kind: KIND.consumer,
    });
    const consumerChildren = childrenOf(processing);
    expect(consumerChildren.map((s) => s.name).sort()).toEqual(
      [
        'user queue wait',
        'model slot wait',
        'chat gpt-4o-mini',
        'responses publish',
        'responses publish',
      ].sort(),
    );
    const chat = only(childrenOf(processing, 'chat gpt-4o-mini'), 'chat');
    expect(chat.kind).toBe(KIND.client);
    expect(chat.events).toContain('first_token');
    const publishes = childrenOf(processing, 'responses publish');
    const deltaPublish = only(
      publishes.filter((s) => s.attributes['relay.event_type'] === 'delta'),
      'deltas',
    );
    const finalPublish = only(
      publishes.filter((s) => s.attributes['relay.event_type'] === 'final'),
      'final',
    );
    expect(deltaPublish.attributes['messaging.batch.message_count']).toBeGreaterThan(0);

    // message-relay: one process span per traced frame, below the consumer's publish of it
    for (const [publish, type] of [
      [deltaPublish, 'delta'],
      [finalPublish, 'final'],
    ] as const) {
      const relayed = only(childrenOf(publish), `relay of the ${type}`);
      expect(relayed).toMatchObject({
        name: 'responses process',
        service: 'message-relay',
        kind: KIND.consumer,
        attributes: expect.objectContaining({ 'relay.event_type': type }) as Record<string, unknown>,
      });
      expect(childrenOf(relayed).map((s) => [s.name, s.kind])).toEqual(
        expect.arrayContaining([
          ['replay append', KIND.client],
          ['user channel publish', KIND.producer],
        ]),
      );
      // gateway again: the socket's gateway delivers it, below the relay's publish
      const published = only(childrenOf(relayed, 'user channel publish'), `publish of the ${type}`);
      const delivered = only(childrenOf(published), `delivery of the ${type}`);
      expect(delivered).toMatchObject({
        name: 'ws deliver',
        service: 'websocket-server',
        kind: KIND.consumer,
        instance: root.instance,
      });
      expect(delivered.attributes['relay.event_id']).toBe(
        type === 'final' ? final.event_id : deltas[0]?.event_id,
      );
    }

    // Log lines written inside a span carry its ids.
    const log = join(infraPaths(process.env).logDir, 'ai-consumer.log');
    const answered = await waitFor(
      async () =>
        (await readFile(log, 'utf8'))
          .split('\n')
          .filter(Boolean)
          .map((line) => {
            try {
              return JSON.parse(line) as Record<string, unknown>;
            } catch {
              return {};
            }
          })
          .find((l) => l.msg === 'answered' && l.request_id === id),
      { timeoutMs: 5000, message: 'the consumer log line of the answer' },
    );
    expect(answered.trace_id).toBe(root.traceId);
    expect(answered.span_id).toBe(processing.spanId);
  });
});
