/**
 * Presence on two real uWS gateways sharing one real Redis (docs/presence.md): online from the
 * first socket anywhere until the last one closes everywhere, away/busy by frame and by PUT,
 * who may read and write whom, sites kept apart, and a change reaching the other gateway's L1.
 */
import {
  REDIS_KEYS,
  createRedisPubSub,
  createRedisStore,
  type KeyValueStore,
  type PresenceRecord,
} from '@relay/common';
import { silentLogger, uniqueName, waitFor } from '@relay/common/testing';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { startGateway, TEST_ENV, type Harness } from '../testing/gateway-harness.js';
import { connectClient, type TestClient } from '../testing/ws-client.js';
import { createTokenService } from '../token-service.js';
import type { TokenMode } from '../sites/sites.js';

const redisUrl = inject('redisUrl');

const site = (id: string, extra: Record<string, unknown> = {}) => ({
  id,
  origins: [`https://${id}.example`],
  identity: ['signed', 'anonymous'],
  secret: `${id}-secret-`.repeat(4),
  allow_missing_origin: true,
  ...extra,
});
const SITES = JSON.stringify({
  sites: [
    site('acme'),
    site('rival'),
    site('private', { presence: { read: 'self' } }),
    site('members', { presence: { read: 'signed' } }),
  ],
});
// Long L1 entries: a read on the other gateway can only be fresh because the invalidation came.
const ENV = { SITES, PRESENCE_L1_TTL_MS: '60000', PRESENCE_TTL_MS: '120000' };
const tokens = createTokenService({ secret: TEST_ENV.JWT_SECRET as string, ttlSeconds: 60 });

const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step().catch(() => undefined);
});

function redis() {
  const store = createRedisStore({ url: redisUrl, logger: silentLogger });
  const pubsub = createRedisPubSub({ url: redisUrl, logger: silentLogger });
  cleanup.push(
    () => store.close(),
    () => pubsub.close(),
  );
  return { store, pubsub };
}

async function gateway(serverId: string, env: Record<string, string> = {}): Promise<Harness> {
  const { store, pubsub } = redis();
  const h = await startGateway({ store, pubsub, serverId, env: { ...ENV, ...env } });
  cleanup.push(() => h.close());
  return h;
}

/** Two gateways on one Redis, and a store to look at it (and clean up after the test). */
async function pair(env: Record<string, string> = {}) {
  const a = await gateway(uniqueName('gw-a'), env);
  const b = await gateway(uniqueName('gw-b'), env);
  return { a, b, store: redis().store };
}

/** A user of `siteId` no other test uses, with a session token; its Redis keys go afterwards. */
async function user(store: KeyValueStore, siteId: string, mode: TokenMode = 'signed') {
  const userid = `${siteId}:${uniqueName(mode === 'anonymous' ? 'anon' : 'u')}`;
  const { token } = await tokens.issue(userid, { site: siteId, mode });
  cleanup.push(() => store.del(REDIS_KEYS.presence(siteId, userid)));
  cleanup.push(() => store.del(REDIS_KEYS.presenceWriteRate(userid)));
  return { userid, token, site: siteId };
}
type User = Awaited<ReturnType<typeof user>>;

async function socket(h: Harness, u: User): Promise<TestClient> {
  const c = await connectClient(`${h.wsBase}/ws?token=${u.token}`);
  cleanup.push(() => c.close());
  return c;
}

async function api(h: Harness, path: string, as: User | null, init: RequestInit = {}) {
  const res = await fetch(`${h.base}${path}`, {
    ...init,
    headers: { ...(as ? { authorization: `Bearer ${as.token}` } : {}), ...(init.headers ?? {}) },
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, headers: res.headers };
}
const read = (h: Harness, as: User, target: string) =>
  api(h, `/api/v2/presence/${encodeURIComponent(target)}`, as);
const statusOf = async (h: Harness, as: User, target: string) => (await read(h, as, target)).body.status;
const put = (h: Harness, as: User | null, target: string, body: unknown) =>
  api(h, `/api/v2/presence/${encodeURIComponent(target)}`, as, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });

/** A histogram's sample count on one gateway. */
async function observed(h: Harness, name: string): Promise<number> {
  const metric = h.metrics.registry.getSingleMetric(name);
  if (!metric) return 0;
  const { values } = await metric.get();
  return values
    .filter((v) => (v as { metricName?: string }).metricName === `${name}_count`)
    .reduce((s, v) => s + v.value, 0);
}

describe('presence on two gateways sharing real Redis', () => {
  it('online on the first socket anywhere, offline only after the last one closed on both gateways', async () => {
    const { a, b, store } = await pair();
    const ann = await user(store, 'acme');
    const reader = await user(store, 'acme');
    expect((await read(b, reader, ann.userid)).status).toBe(404);
    const onA = await socket(a, ann);
    await waitFor(async () => (await statusOf(b, reader, ann.userid)) === 'online');
    const seen = (await read(b, reader, ann.userid)).body;
    expect(seen).toMatchObject({ user_id: ann.userid, message: '', node_id: expect.stringMatching(/^gw-a/) });
    expect(seen.ttl_seconds).toBeGreaterThan(100);
    const onB = await socket(b, ann);
    const second = await socket(b, ann);
    await onA.close();
    await second.close();
    // a has given its lease back (its leave reached Redis) and b still holds one.
    const key = REDIS_KEYS.presence('acme', ann.userid);
    await waitFor(
      async () => (await store.hashGetMany([key]))[0]?.[`@${String(seen.node_id)}`] === undefined,
    );
    for (const h of [a, b]) expect(await statusOf(h, reader, ann.userid)).toBe('online');
    await onB.close();
    await waitFor(async () => (await statusOf(a, reader, ann.userid)) === 'offline');
    await waitFor(async () => (await statusOf(b, reader, ann.userid)) === 'offline');
    const gone = (await read(a, reader, ann.userid)).body;
    expect(gone.ttl_seconds).toBeNull();
    expect(Date.parse(String(gone.last_seen))).toBeGreaterThan(Date.now() - 10_000);
  });

  it('away by frame on one gateway: the socket gets the new presence, the other gateway’s L1 drops its copy', async () => {
    const { a, b, store } = await pair();
    const ann = await user(store, 'acme');
    const reader = await user(store, 'acme');
    const c = await socket(a, ann);
    await waitFor(async () => (await statusOf(b, reader, ann.userid)) === 'online');
    // Cached on b now (a hit proves it), for a minute unless invalidated.
    expect(await statusOf(b, reader, ann.userid)).toBe('online');
    const before = await observed(b, 'presence_invalidation_delay_seconds');
    c.send({ type: 'presence', status: 'away', message: 'lunch' });
    const frame = await c.next((f) => f.type === 'presence');
    expect(frame).toMatchObject({ user_id: ann.userid, status: 'away', message: 'lunch' });
    await waitFor(async () => (await statusOf(b, reader, ann.userid)) === 'away', { timeoutMs: 5000 });
    expect(await observed(b, 'presence_invalidation_delay_seconds')).toBeGreaterThan(before);
    expect((await read(b, reader, ann.userid)).body.message).toBe('lunch');
    // A bad frame is answered with an error; the socket stays.
    c.send({ type: 'presence', status: 'offline' });
    const error = await c.next((f) => f.type === 'error');
    expect(error.code).toBe('invalid_message');
    c.send({ type: 'presence', status: 'busy' });
    await c.next((f) => f.type === 'presence' && f.status === 'busy');
    await waitFor(async () => (await statusOf(b, reader, ann.userid)) === 'busy', { timeoutMs: 5000 });
  });

  it('busy by PUT with one’s own token only', async () => {
    const { a, b, store } = await pair();
    const ann = await user(store, 'acme');
    const bob = await user(store, 'acme');
    await socket(a, ann);
    await waitFor(async () => (await statusOf(b, bob, ann.userid)) === 'online');
    const own = await put(b, ann, ann.userid, { status: 'busy', message: 'in a call' });
    expect(own.status).toBe(200);
    expect(own.body).toMatchObject({ user_id: ann.userid, status: 'busy', message: 'in a call' });
    await waitFor(async () => (await statusOf(a, bob, ann.userid)) === 'busy', { timeoutMs: 5000 });
    expect((await put(a, bob, ann.userid, { status: 'away' })).status).toBe(403);
    expect((await put(a, bob, ann.userid, { status: 'away' })).body.error).toBe('forbidden');
    expect((await put(a, null, ann.userid, { status: 'away' })).status).toBe(401);
    expect((await put(a, ann, ann.userid, { status: 'offline' })).status).toBe(400);
    expect((await put(a, ann, ann.userid, { status: 'away', extra: 1 })).status).toBe(400);
    expect((await put(a, ann, ann.userid, 'not json')).status).toBe(400);
    expect((await put(a, ann, ann.userid, { status: 'away', message: 'x'.repeat(141) })).status).toBe(400);
    expect((await put(a, ann, ann.userid, { status: 'away', message: 'x'.repeat(100_000) })).status).toBe(
      413,
    );
    expect(await statusOf(b, bob, ann.userid)).toBe('busy');
  });

  it('never across sites: another site’s user reads exactly like one who never existed', async () => {
    const { a, store } = await pair();
    const ann = await user(store, 'acme');
    const spy = await user(store, 'rival');
    await socket(a, ann);
    const colleague = await user(store, 'acme');
    await waitFor(async () => (await statusOf(a, colleague, ann.userid)) === 'online');
    const cross = await read(a, spy, ann.userid);
    const nobody = await read(a, spy, `acme:${uniqueName('nobody')}`);
    expect(cross.status).toBe(404);
    expect(cross.body).toEqual(nobody.body);
    const batch = await api(a, '/api/v2/presence/batch', spy, {
      method: 'POST',
      body: JSON.stringify({ users: [ann.userid] }),
    });
    expect(batch.body).toEqual({ presence: [], not_found: [ann.userid] });
    // Nor can the rival write it.
    expect((await put(a, spy, ann.userid, { status: 'away' })).status).toBe(403);
  });

  it('who may read whom is the site’s setting: oneself only, or signed sessions only', async () => {
    const { a, store } = await pair();
    const me = await user(store, 'private');
    const other = await user(store, 'private');
    await socket(a, other);
    await socket(a, me);
    await waitFor(async () => (await statusOf(a, me, me.userid)) === 'online');
    const refused = await read(a, me, other.userid);
    expect(refused.status).toBe(403);
    expect(refused.body.error).toBe('forbidden');
    // The same answer for a user who does not exist: the refusal depends on the reader alone.
    expect((await read(a, me, `private:${uniqueName('nobody')}`)).body).toEqual(refused.body);

    const member = await user(store, 'members', 'signed');
    const visitor = await user(store, 'members', 'anonymous');
    await socket(a, member);
    await waitFor(async () => (await statusOf(a, member, member.userid)) === 'online');
    expect((await read(a, visitor, member.userid)).status).toBe(403);
    expect((await read(a, visitor, visitor.userid)).status).toBe(404);
    expect((await read(a, member, member.userid)).status).toBe(200);
    const visitorSelf = await put(a, visitor, visitor.userid, { status: 'away' });
    expect(visitorSelf.status).toBe(200);
    expect(await statusOf(a, member, visitor.userid)).toBe('offline');
  });

  it('batch reads: ?users= and POST, bounded, deduplicated, unknown ids listed', async () => {
    const { a, b, store } = await pair();
    const ann = await user(store, 'acme');
    const bob = await user(store, 'acme');
    await socket(a, ann);
    await socket(b, bob);
    const ghost = `acme:${uniqueName('ghost')}`;
    await waitFor(async () => (await statusOf(a, ann, bob.userid)) === 'online');
    const q = await api(a, `/api/v2/presence?users=${ann.userid},${bob.userid},${ghost},${ann.userid}`, ann);
    expect(q.status).toBe(200);
    const records = q.body.presence as PresenceRecord[];
    expect(records.map((r) => [r.user_id, r.status])).toEqual([
      [ann.userid, 'online'],
      [bob.userid, 'online'],
    ]);
    expect(q.body.not_found).toEqual([ghost]);
    const many = Array.from({ length: 101 }, (_, i) => `acme:x${i}`);
    expect((await api(a, `/api/v2/presence?users=${many.join(',')}`, ann)).status).toBe(400);
    expect((await api(a, '/api/v2/presence?users=', ann)).status).toBe(400);
    expect((await api(a, `/api/v2/presence?users=${'%2C'.repeat(20_000)}`, ann)).status).toBe(400);
    const post = (body: string) => api(b, '/api/v2/presence/batch', ann, { method: 'POST', body });
    expect((await post(JSON.stringify({ users: [bob.userid, ghost] }))).body).toMatchObject({
      presence: [{ user_id: bob.userid, status: 'online' }],
      not_found: [ghost],
    });
    expect((await post(JSON.stringify({ users: many }))).status).toBe(400);
    expect((await post(JSON.stringify({ users: [ann.userid], more: true }))).status).toBe(400);
    expect((await post(JSON.stringify({ users: ['bad id!'] }))).status).toBe(400);
    expect((await post('x'.repeat(1_000_000))).status).toBe(413);
    expect((await api(a, '/api/v2/presence/%E0%A4%A', ann)).status).toBe(400);
    // Preflight of a browser PUT from the site's page.
    const pre = await fetch(`${a.base}/api/v2/presence/x`, {
      method: 'OPTIONS',
      headers: { origin: 'https://acme.example', 'access-control-request-method': 'PUT' },
    });
    expect(pre.headers.get('access-control-allow-methods')).toContain('PUT');
    const cors = await api(a, `/api/v2/presence/${encodeURIComponent(ann.userid)}`, ann, {
      headers: { origin: 'https://acme.example' },
    });
    expect(cors.headers.get('access-control-allow-origin')).toBe('https://acme.example');
    expect(
      (
        await api(a, `/api/v2/presence/${encodeURIComponent(ann.userid)}`, ann, {
          headers: { origin: 'https://rival.example' },
        })
      ).status,
    ).toBe(403);
  });

  it('presence frames count against the frame budget', async () => {
    const { a, store } = await pair({ RATE_LIMIT_FRAMES: '3' });
    const ann = await user(store, 'acme');
    const c = await socket(a, ann);
    for (let i = 0; i < 4; i++) c.send({ type: 'presence', status: i % 2 ? 'away' : 'busy' });
    const limited = await c.next((f) => f.type === 'error' && f.code === 'rate_limited');
    expect(limited.message).toMatch(/Too many frames/);
  });

  it('a gateway that shuts down gives its users back: offline at once unless the other holds them', async () => {
    const { a, b, store } = await pair();
    const ann = await user(store, 'acme');
    const bob = await user(store, 'acme');
    const reader = await user(store, 'acme');
    await socket(a, ann);
    await socket(a, bob);
    await socket(b, bob);
    await waitFor(async () => (await statusOf(b, reader, ann.userid)) === 'online');
    await waitFor(async () => (await statusOf(b, reader, bob.userid)) === 'online');
    await a.gateway.close();
    await waitFor(async () => (await statusOf(b, reader, ann.userid)) === 'offline', { timeoutMs: 5000 });
    expect(await statusOf(b, reader, bob.userid)).toBe('online');
  });
});
