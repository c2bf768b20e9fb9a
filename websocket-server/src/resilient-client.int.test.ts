import {
  TOPICS,
  createMemoryBus,
  createMemoryPubSubHub,
  createMemoryStore,
  promptEventSchema,
  type Bus,
  type ServerFrame,
} from '@relay/common';
import { createResilientClient, type FinalFrame, type ResilientClient } from '@relay/client';
import { waitFor } from '@relay/common/testing';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { frames, relayFrame } from './testing/frames.js';
import { startGateway, type Harness } from './testing/gateway-harness.js';
import { fetchToken } from './testing/ws-client.js';

/** The resilient client (@relay/client) against a real gateway, the test playing consumer + relay. */
describe('resilient client against a real gateway', () => {
  const cleanup: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
  });

  async function setup(options: { wrapBus?: (bus: Bus) => Bus } = {}) {
    const hub = createMemoryPubSubHub();
    const relay = hub.client();
    const store = createMemoryStore();
    const inner = createMemoryBus({ defaultPartitions: 2 });
    await inner.connect();
    cleanup.push(() => inner.close());
    const h: Harness = await startGateway({
      store,
      pubsub: hub.client(),
      bus: options.wrapBus?.(inner) ?? inner,
    });
    cleanup.push(() => h.close());
    const prompts: Array<{ request_id: string; content: string }> = [];
    await inner.subscribe({
      groupId: 'pipeline',
      topics: [TOPICS.incoming],
      handler: async (m) => void prompts.push(promptEventSchema.parse(JSON.parse(m.value))),
    });
    const sockets: WebSocket[] = [];
    const client = createResilientClient({
      url: `${h.wsBase}/ws`,
      userid: 'alice',
      getToken: () => fetchToken(h.base, 'alice'),
      createSocket: (url) => {
        const s = new WebSocket(url);
        sockets.push(s);
        return s;
      },
      reconnectBaseMs: 20,
      reconnectMaxMs: 200,
    });
    cleanup.push(() => client.close());
    const seen: ServerFrame[] = [];
    const finals: Array<{ id: string; frame: FinalFrame; streamed: string }> = [];
    client.onFrame((f) => seen.push(f));
    client.onFinal((id, frame, streamed) => finals.push({ id, frame, streamed }));
    const publish = (frame: ServerFrame) => relayFrame(store, relay, 'alice', frame);
    return { h, inner, client, sockets, prompts, seen, finals, publish };
  }

  /** Kills the client's current connection without a close handshake, as a network loss would. */
  function cut(sockets: WebSocket[]): void {
    sockets.at(-1)?.terminate();
  }

  async function opened(client: ResilientClient, sockets: WebSocket[], count: number) {
    await waitFor(() => sockets.length >= count && client.state === 'open');
  }

  it('survives connections killed mid-stream: one final per request, deltas adding up', async () => {
    const { client, sockets, prompts, seen, finals, publish } = await setup();
    await client.start();
    const first = client.send('first');
    const second = client.send('second');
    await waitFor(() => prompts.length === 2);

    // First answer: cut mid-stream; the rest (and the final) is published while the client is away.
    await publish(frames.delta(first, 0, 'Hel'));
    await publish(frames.delta(first, 1, 'lo'));
    await waitFor(() => client.text(first) === 'Hello');
    cut(sockets);
    await publish(frames.delta(first, 2, ', '));
    await publish(frames.delta(first, 3, 'world'));
    await publish(frames.final(first, 'Hello, world'));
    await opened(client, sockets, 2);

    // Second answer: the generation restarts (reset) and the connection is cut again.
    await publish(frames.delta(second, 0, 'dis'));
    await publish(frames.reset(second));
    await publish(frames.delta(second, 0, 'Good'));
    await waitFor(() => client.text(second) === 'Good');
    cut(sockets);
    // Sent while disconnected: queued, sent on the next connection.
    const third = client.send('third');
    await publish(frames.delta(second, 1, 'bye'));
    await publish(frames.final(second, 'Goodbye'));
    await opened(client, sockets, 3);
    await waitFor(() => prompts.length === 3);
    await publish(frames.delta(third, 0, '!'));
    await publish(frames.final(third, '!'));

    await waitFor(() => finals.length === 3);
    expect(
      finals.map((f) => [f.id, f.frame.type === 'response' ? f.frame.content : f.frame.type, f.streamed]),
    ).toEqual([
      [first, 'Hello, world', 'Hello, world'],
      [second, 'Goodbye', 'Goodbye'],
      [third, '!', '!'],
    ]);
    const ids = seen.flatMap((f) => ('event_id' in f && f.event_id !== undefined ? [f.event_id] : []));
    expect(new Set(ids).size).toBe(ids.length);
    expect(prompts.map((p) => p.content)).toEqual(['first', 'second', 'third']);
    expect(client.pending()).toEqual([]);
  });

  it('a message whose ack was lost with the connection is resent under its id and published once', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let publishes = 0;
    const { h, client, sockets, prompts, finals, publish } = await setup({
      wrapBus: (inner) => ({
        ...inner,
        async publish(topic, records) {
          publishes++;
          await gate;
          return inner.publish(topic, records);
        },
      }),
    });
    await client.start();
    const id = client.send('once');
    await waitFor(() => publishes === 1);
    // The connection dies while Kafka is acknowledging: the ack never reaches the client.
    cut(sockets);
    release();
    await waitFor(() => prompts.length === 1);
    await opened(client, sockets, 2);
    // The resend found the accept marker: acked again, not published again.
    await waitFor(async () => (await h.metric('gateway_messages_total', { outcome: 'duplicate' })) === 1);
    await publish(frames.final(id, 'done'));
    await waitFor(() => finals.length === 1);
    expect(prompts.map((p) => p.request_id)).toEqual([id]);
    expect(finals[0]).toMatchObject({ id, streamed: '' });
  });
});
