import {
  REDIS_KEYS,
  createGuard,
  createMemoryPubSubHub,
  createMemoryStore,
  createMetrics,
  loadConfig,
  type KeyValueStore,
  type PubSub,
} from '@relay/common';
import { silentLogger, waitFor } from '@relay/common/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { presenceFragment } from './options.js';
import { createPresence, type Presence } from './presence-service.js';

/** Two gateways' presence on one in-process "Redis", with one clock the test moves. */
function world(env: Record<string, string> = {}) {
  let t = 1_700_000_000_000;
  const clock = { now: () => t, advance: (ms: number) => void (t += ms) };
  const store = createMemoryStore({ now: clock.now });
  const hub = createMemoryPubSubHub();
  const settings = loadConfig({ presence: presenceFragment }, env).presence;
  const made: Presence[] = [];
  const node = (serverId: string, opts: { store?: KeyValueStore; pubsub?: PubSub } = {}) => {
    const metrics = createMetrics({ service: 'test', instance: serverId, defaultMetrics: false });
    const p = createPresence({
      settings,
      serverId,
      store: opts.store ?? store,
      pubsub: opts.pubsub ?? hub.client(),
      logger: silentLogger,
      metrics,
      guard: createGuard({ logger: silentLogger, metrics }),
      now: clock.now,
      perf: clock,
    });
    made.push(p);
    return p;
  };
  return { clock, store, settings, node, made };
}

let current: ReturnType<typeof world> | undefined;
afterEach(async () => {
  for (const p of current?.made ?? []) await p.close();
  current = undefined;
});
const setup = (env?: Record<string, string>) => (current = world(env));
const status = async (p: Presence, user: string, site = 'acme') =>
  (await p.read(site, [user]))[0]?.status ?? null;

describe('presence across gateways (in-process store, injected clock)', () => {
  it('online from the first socket anywhere until the last one closes everywhere', async () => {
    const { node } = setup();
    const a = node('gw-a');
    const b = node('gw-b');
    await Promise.all([a.start(), b.start()]);
    expect(await status(a, 'acme:ann')).toBeNull();
    await a.join('acme', 'acme:ann');
    await waitFor(async () => (await status(b, 'acme:ann')) === 'online');
    await b.join('acme', 'acme:ann');
    await a.leave('acme', 'acme:ann');
    expect(await status(a, 'acme:ann')).toBe('online');
    expect(await status(b, 'acme:ann')).toBe('online');
    await b.leave('acme', 'acme:ann');
    await waitFor(async () => (await status(a, 'acme:ann')) === 'offline');
    expect(await status(b, 'acme:ann')).toBe('offline');
  });

  it("a crashed gateway's users read offline once its lease runs out, from the L1 too", async () => {
    const { node, clock, settings } = setup();
    const dead = node('gw-dead');
    const reader = node('gw-b');
    await Promise.all([dead.start(), reader.start()]);
    await dead.join('acme', 'acme:bob');
    expect(await status(reader, 'acme:bob')).toBe('online');
    // gw-dead stops beating (crashed). The reader's cached copy holds the lease end, so it turns
    // offline on time even without another read from Redis.
    clock.advance(settings.leaseMs - 1);
    expect(await status(reader, 'acme:bob')).toBe('online');
    clock.advance(1);
    const [record] = await reader.read('acme', ['acme:bob']);
    expect(record).toMatchObject({ status: 'offline', node_id: 'gw-dead', ttl_seconds: null });
  });

  it('heartbeats keep a live gateway’s users online past the lease', async () => {
    const { node, clock, settings } = setup();
    const a = node('gw-a');
    await a.start();
    await a.join('acme', 'acme:cy');
    for (let i = 0; i < 5; i++) {
      clock.advance(settings.heartbeatMs);
      await a.heartbeat();
    }
    expect(await status(a, 'acme:cy')).toBe('online');
    const [record] = await a.read('acme', ['acme:cy']);
    expect(record?.ttl_seconds).toBe(settings.leaseMs / 1000);
  });

  it('a heartbeat after a lapse (Redis lost the key, or the gateway was cut off) brings the user back and tells the others', async () => {
    const { node, store, clock, settings } = setup();
    const a = node('gw-a');
    const b = node('gw-b');
    await Promise.all([a.start(), b.start()]);
    await a.join('acme', 'acme:dee');
    expect(await status(b, 'acme:dee')).toBe('online');
    await store.del(REDIS_KEYS.presence('acme', 'acme:dee'));
    clock.advance(settings.l1TtlMs + 1);
    expect(await status(b, 'acme:dee')).toBeNull();
    await a.heartbeat();
    await waitFor(async () => (await status(b, 'acme:dee')) === 'online');
  });

  it('a set on one gateway reaches the other gateway’s L1 through the channel', async () => {
    const { node } = setup();
    const a = node('gw-a');
    const b = node('gw-b');
    await Promise.all([a.start(), b.start()]);
    await a.join('acme', 'acme:eve');
    expect(await status(b, 'acme:eve')).toBe('online');
    expect(b.cache.size).toBe(1);
    const result = await a.set('acme', 'acme:eve', { status: 'away', message: 'lunch' });
    expect(result).toMatchObject({ ok: true, record: { status: 'away', message: 'lunch', node_id: 'gw-a' } });
    // No clock step: only the invalidation can make the cached "online" go.
    await waitFor(async () => (await status(b, 'acme:eve')) === 'away');
  });

  it('sites are separate namespaces: the same user id on another site is another (absent) user', async () => {
    const { node } = setup();
    const a = node('gw-a');
    await a.start();
    await a.join('acme', 'acme:fay');
    expect(await status(a, 'acme:fay', 'acme')).toBe('online');
    expect(await status(a, 'acme:fay', 'other')).toBeNull();
  });

  it('writes are rate limited per user', async () => {
    const { node } = setup({ PRESENCE_WRITE_LIMIT: '2' });
    const a = node('gw-a');
    await a.start();
    expect((await a.set('acme', 'acme:gus', { status: 'busy' })).ok).toBe(true);
    expect((await a.set('acme', 'acme:gus', { status: 'away' })).ok).toBe(true);
    expect(await a.set('acme', 'acme:gus', { status: 'online' })).toMatchObject({
      ok: false,
      code: 'rate_limited',
    });
  });

  it('close gives back every lease still held', async () => {
    const { node } = setup();
    const a = node('gw-a');
    const b = node('gw-b');
    await Promise.all([a.start(), b.start()]);
    await a.join('acme', 'acme:hal');
    await a.join('acme', 'acme:ida');
    expect(a.held).toBe(2);
    await a.close();
    await a.close();
    await waitFor(async () =>
      (await b.read('acme', ['acme:hal', 'acme:ida'])).every((r) => r?.status === 'offline'),
    );
  });

  it('join and leave never reject, even with Redis failing', async () => {
    const { node, store } = setup();
    const failing: KeyValueStore = {
      ...store,
      presenceLease: () => Promise.reject(new Error('redis down')),
    };
    const a = node('gw-a', { store: failing });
    await a.start();
    await expect(a.join('acme', 'acme:jo')).resolves.toBeUndefined();
    await expect(a.leave('acme', 'acme:jo')).resolves.toBeUndefined();
    await expect(a.heartbeat()).resolves.toBeUndefined();
  });
});

describe('presence options', () => {
  it('refuse a lease that a heartbeat plus the L1 TTL could outlast', () => {
    expect(() =>
      loadConfig({ presence: presenceFragment }, { PRESENCE_TTL_MS: '10000', PRESENCE_HEARTBEAT_MS: '8000' }),
    ).toThrow(/PRESENCE_TTL_MS must be at least/);
    expect(loadConfig({ presence: presenceFragment }, {}).presence).toMatchObject({
      leaseMs: 30_000,
      heartbeatMs: 10_000,
      l1TtlMs: 5000,
    });
  });
});
