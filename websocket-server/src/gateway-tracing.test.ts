import {
  TOPICS,
  attachEventId,
  createMemoryBus,
  createMemoryPubSubHub,
  createMemoryStore,
  createMetrics,
  loadConfig,
  serializeFrame,
  withTraceContext,
  type BusMessage,
  type Tracer,
} from '@relay/common';
import { createRecordingTracer, silentLogger, waitFor, type RecordingTracer } from '@relay/common/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { configFragments, sitesFor } from './config.js';
import { createSocketSessions } from './socket-sessions.js';
import { fakeSocket, type FakeSocket } from './testing/fake-socket.js';
import { createTokenService } from './token-service.js';
import { createUserSockets } from './user-sockets.js';

let recording: RecordingTracer | undefined;
afterEach(async () => {
  await recording?.close();
  recording = undefined;
});

const frame = attachEventId(
  serializeFrame({ type: 'response', content: 'hi', userid: 'alice', timestamp: 't', processing_time_ms: 1 }),
  '1-0',
);

async function gateway(tracer?: Tracer, env: Record<string, string> = {}) {
  const config = loadConfig(configFragments, { JWT_SECRET: 'x'.repeat(32), DEV_TOKENS: 'true', ...env });
  const tokens = createTokenService({ secret: config.gateway.jwtSecret, ttlSeconds: 60 });
  const bus = createMemoryBus();
  await bus.connect();
  const prompts: BusMessage[] = [];
  await bus.subscribe({
    groupId: 'test',
    topics: [TOPICS.incoming],
    handler: (m) => Promise.resolve(void prompts.push(m)),
  });
  const sessions = createSocketSessions<FakeSocket>({
    settings: config.gateway,
    serverId: 'gw',
    logger: silentLogger,
    metrics: createMetrics({ service: 'test', instance: 'test', defaultMetrics: false }),
    bus,
    store: createMemoryStore(),
    pubsub: createMemoryPubSubHub().client(),
    tokens,
    sites: sitesFor(config.gateway, '127.0.0.1'),
    ...(tracer ? { tracer } : {}),
  });
  const admission = sessions.admit({
    query: new URLSearchParams(`token=${(await tokens.issue('alice')).token}&ack=1`),
    origin: '',
    ip: '127.0.0.1',
  });
  if (!admission.ok) throw new Error(admission.reason);
  const socket = fakeSocket({ open: false });
  const ws: FakeSocket = {
    ...socket,
    connection: admission.data.connection,
    getUserData: () => admission.data,
  };
  sessions.open(ws);
  await waitFor(() => admission.data.connection.state === 'live');
  const send = (text: string) => sessions.message(ws, Buffer.from(text), false);
  return { ws, send, prompts };
}

describe('gateway spans', () => {
  it('a client message is a trace: ws message → incoming_messages publish, whose context the record carries', async () => {
    recording = createRecordingTracer('websocket-server');
    const { ws, send, prompts } = await gateway(recording.tracer);
    send(JSON.stringify({ type: 'message', content: 'hello', id: 'm-1' }));
    await waitFor(() => ws.frames().some((f) => f.type === 'ack'));
    await waitFor(() => prompts.length === 1 && recording?.spans().length === 2);
    const [produce, receive] = recording.spans();
    expect(receive).toMatchObject({
      name: 'ws message',
      kind: 'server',
      parentSpanId: undefined,
      attributes: { 'relay.request_id': 'm-1', 'relay.outcome': 'accepted' },
    });
    expect(produce).toMatchObject({
      name: 'incoming_messages publish',
      kind: 'producer',
      parentSpanId: receive?.spanId,
      traceId: receive?.traceId,
      attributes: { 'messaging.system': 'kafka', 'messaging.destination.name': 'incoming_messages' },
    });
    expect(prompts[0]?.headers).toEqual({
      correlation_id: 'm-1',
      traceparent: `00-${produce?.traceId}-${produce?.spanId}-01`,
    });
  });

  it('a refused message ends its span with the refusal as its outcome, and publishes nothing', async () => {
    recording = createRecordingTracer('websocket-server');
    const { ws, send, prompts } = await gateway(recording.tracer, { RATE_LIMIT_MESSAGES: '1' });
    send(JSON.stringify({ type: 'message', content: 'one' }));
    send(JSON.stringify({ type: 'message', content: 'two' }));
    await waitFor(() => ws.frames().some((f) => f.type === 'error'));
    await waitFor(() => recording?.spans().filter((s) => s.name === 'ws message').length === 2);
    const outcomes = recording.spans().map((s) => [s.name, s.attributes['relay.outcome']]);
    expect(outcomes).toEqual([
      ['incoming_messages publish', undefined],
      ['ws message', 'accepted'],
      ['ws message', 'rate_limited'],
    ]);
    expect(prompts).toHaveLength(1);
  });

  it('tracing off: no trace context on the record (there is no trace to continue)', async () => {
    const { ws, send, prompts } = await gateway();
    send(JSON.stringify({ type: 'message', content: 'hello', id: 'm-2' }));
    await waitFor(() => ws.frames().some((f) => f.type === 'ack'));
    await waitFor(() => prompts.length === 1);
    expect(prompts[0]?.headers).toEqual({ correlation_id: 'm-2' });
  });
});

describe('delivery of a traced frame', () => {
  const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';

  async function registry(tracer?: Tracer) {
    const hub = createMemoryPubSubHub();
    const sockets = createUserSockets<FakeSocket>({
      pubsub: hub.client(),
      logger: silentLogger,
      deliver: (socket, payload) => socket.connection.live(payload),
      ...(tracer ? { tracer } : {}),
    });
    const a = fakeSocket();
    const b = fakeSocket();
    await sockets.add(a);
    await sockets.add(b);
    return { publish: (payload: string) => hub.client().publish('user:alice', payload), a, b };
  }

  it('sockets get the frame bytes only; one ws deliver span hangs below the relay publish', async () => {
    recording = createRecordingTracer('websocket-server');
    const { publish, a, b } = await registry(recording.tracer);
    await publish(withTraceContext(frame, { traceparent }));
    expect(a.sent).toEqual([frame]);
    expect(b.sent).toEqual([frame]);
    expect(recording.spans()).toMatchObject([
      {
        name: 'ws deliver',
        kind: 'consumer',
        traceId: '0af7651916cd43dd8448eb211c80319c',
        parentSpanId: 'b7ad6b7169203331',
        attributes: { 'relay.sockets': 2, 'relay.event_id': '1-0' },
      },
    ]);
    // An untraced frame makes no span.
    await publish(
      attachEventId(
        serializeFrame({ type: 'error', message: 'm', code: 'internal_error', userid: 'alice' }),
        '2-0',
      ),
    );
    expect(recording.spans()).toHaveLength(1);
    expect(a.sent).toHaveLength(2);
  });

  it('a gateway that does not trace still strips the trace context', async () => {
    const { publish, a } = await registry();
    await publish(withTraceContext(frame, { traceparent }));
    expect(a.sent).toEqual([frame]);
  });
});
