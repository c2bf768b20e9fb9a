import {
  createMemoryPubSubHub,
  createMemoryStore,
  type KeyValueStore,
  type MemoryPubSubHub,
} from '@relay/common';
import { waitFor } from '@relay/common/testing';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type WebSocket from 'ws';
import { frames, relayFrame } from './testing/frames.js';
import { startGateway, type Harness } from './testing/gateway-harness.js';
import { connectClient, type TestClient } from './testing/ws-client.js';

type Setting = 'off' | 'shared' | 'dedicated';

/** Bytes the client's TCP socket has read so far (frame headers and the upgrade response included). */
const wireBytes = (c: TestClient) =>
  (c.socket as unknown as { _socket: { bytesRead: number } })._socket.bytesRead;

describe('WS_COMPRESSION: permessage-deflate on the sockets (real uWS)', () => {
  let hub: MemoryPubSubHub;
  let store: KeyValueStore;
  const harnesses: Harness[] = [];
  const clients: TestClient[] = [];

  beforeEach(() => {
    hub = createMemoryPubSubHub();
    store = createMemoryStore();
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.close();
    for (const h of harnesses.splice(0)) await h.close();
  });

  async function gateway(setting: Setting): Promise<Harness> {
    const h = await startGateway({ store, pubsub: hub.client(), env: { WS_COMPRESSION: setting } });
    harnesses.push(h);
    return h;
  }

  async function client(h: Harness, userid: string, options?: WebSocket.ClientOptions): Promise<TestClient> {
    const c = await connectClient(await h.url(userid, '&stream=1'), options);
    clients.push(c);
    return c;
  }

  /** A streamed answer of 60 word deltas and its final frame, as the relay sends them. */
  async function answer(userid: string, requestId: string): Promise<{ content: string; bytes: number }> {
    const relay = hub.client();
    const words = Array.from({ length: 60 }, (_, i) => ` word${i % 7}`);
    let bytes = 0;
    for (const [seq, delta] of words.entries()) {
      const f = frames.delta(requestId, seq, delta, userid);
      bytes += JSON.stringify(f).length;
      await relayFrame(store, relay, userid, f);
    }
    const content = words.join('');
    await relayFrame(store, relay, userid, frames.final(requestId, content, userid));
    return { content, bytes };
  }

  async function received(c: TestClient, requestId: string, before: number) {
    const final = await c.next((f) => f.type === 'response' && f.request_id === requestId);
    const deltas = c.frames.filter((f) => f.type === 'response.delta' && f.request_id === requestId);
    return { final, joined: deltas.map((f) => f.delta).join(''), wire: wireBytes(c) - before };
  }

  it('compresses for a client that offers it, less with a dedicated compressor, and never when off', async () => {
    const wire: Partial<Record<Setting, number>> = {};
    let plain = 0;
    for (const setting of ['off', 'shared', 'dedicated'] as const) {
      const h = await gateway(setting);
      const c = await client(h, `u-${setting}`);
      expect(c.socket.extensions.includes('permessage-deflate')).toBe(setting !== 'off');
      const before = wireBytes(c);
      const sent = await answer(`u-${setting}`, `r-${setting}`);
      const got = await received(c, `r-${setting}`, before);
      expect(got.joined).toBe(sent.content);
      expect(got.final.content).toBe(sent.content);
      wire[setting] = got.wire;
      console.log(
        `[compression] ${setting}: ${got.wire} bytes on the wire for ${sent.bytes} bytes of frames`,
      );
      plain = sent.bytes;
    }
    // Off: every payload byte plus frame headers. Shared: each frame deflated alone. Dedicated: the
    // window remembers the previous frames' keys and ids.
    expect(wire.off).toBeGreaterThan(plain);
    expect(wire.shared).toBeLessThan(wire.off!);
    expect(wire.dedicated).toBeLessThan(wire.shared! * 0.6);
  });

  it('sends plain frames to a client that does not offer deflate', async () => {
    const h = await gateway('dedicated');
    const c = await client(h, 'plain', { perMessageDeflate: false });
    expect(c.socket.extensions).toBe('');
    const before = wireBytes(c);
    const sent = await answer('plain', 'r1');
    const got = await received(c, 'r1', before);
    expect(got.joined).toBe(sent.content);
    expect(got.wire).toBeGreaterThan(sent.bytes);
  });

  it('closes a socket whose compressed frame inflates past the cap; other sockets and the process go on', async () => {
    const h = await gateway('shared');
    const bomb = await client(h, 'bomber');
    const other = await client(h, 'bystander');
    // 1 MB of one letter deflates to ~1 KB; uWS inflates at most maxPayloadLength (4 × MAX_PAYLOAD_BYTES).
    bomb.socket.send(JSON.stringify({ type: 'message', content: 'a'.repeat(1_000_000) }), { compress: true });
    await waitFor(() => bomb.closed, { timeoutMs: 5000, message: 'the bomb socket closed' });
    expect([1006, 1009]).toContain(bomb.closed?.code);
    // A compressed frame within the limits is read like any other: a bad one gets its error frame.
    other.socket.send(JSON.stringify({ type: 'nope' }), { compress: true });
    const error = await other.next((f) => f.type === 'error');
    expect(error.code).toBe('unknown_type');
    const sent = await answer('bystander', 'r2');
    expect((await received(other, 'r2', 0)).joined).toBe(sent.content);
    expect((await fetch(`${h.base}/health`)).status).toBe(200);
  });
});
