/**
 * Identity and sites on a real uWS gateway (docs/identity.md): in production mode nobody obtains a
 * token for a userid they were not given, tokens work only on their own site's origins, and the
 * history API shows a user their own conversations only.
 */
import { createServer, type Server } from 'node:http';
import { REDIS_KEYS, utcDay } from '@relay/common';
import { SignJWT } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startGateway, type Harness } from './testing/gateway-harness.js';
import { createTokenService } from './token-service.js';

const ACME_SECRET = 'acme-'.repeat(8);
const SITES = JSON.stringify({
  sites: [
    { id: 'acme', origins: ['https://www.acme.example'], identity: ['signed'], secret: ACME_SECRET },
    {
      id: 'guarded',
      origins: ['https://guarded.example'],
      identity: ['anonymous'],
      captcha: { secret: 'captcha-secret', verify_url: 'http://127.0.0.1:1/never' },
      limits: { daily_tokens_per_user: 100 },
    },
  ],
});
const DEMO_ORIGIN = 'http://localhost:3000';

const harnesses: Harness[] = [];
const servers: Server[] = [];
afterEach(async () => {
  for (const h of harnesses.splice(0)) await h.close();
  for (const s of servers.splice(0)) await new Promise((done) => s.close(done));
});

/** A gateway in production mode: no dev tokens, the demo site and the sites above. */
async function production(env: Record<string, string> = {}): Promise<Harness> {
  const h = await startGateway({
    env: { DEV_TOKENS: 'false', DEMO_SITE: 'true', SITES, TRUST_PROXY: 'true', ...env },
  });
  harnesses.push(h);
  return h;
}

async function postToken(h: Harness, body: unknown, origin = DEMO_ORIGIN, query = '') {
  const res = await fetch(`${h.base}/token${query}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(origin ? { origin } : {}) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, headers: res.headers };
}

/** Status of an upgrade with `token` from `origin` ('' sends none). */
function upgrade(h: Harness, token: string, origin: string, query = ''): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = new WebSocket(`${h.wsBase}/ws?token=${token}${query}`, origin ? { origin } : {});
    s.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    s.once('open', () => {
      s.close();
      resolve(101);
    });
    s.once('error', (err) => (err.message.includes('Unexpected server response') ? undefined : reject(err)));
  });
}

const hostJwt = (claims: Record<string, unknown>, secret = ACME_SECRET, alg = 'HS256') =>
  new SignJWT(claims).setProtectedHeader({ alg }).sign(new TextEncoder().encode(secret));
const now = () => Math.floor(Date.now() / 1000);

describe('anonymous visitors (demo site)', () => {
  it('get a userid the server chose, unguessable, usable only from the site’s origins', async () => {
    const h = await production();
    const a = await postToken(h, { site: 'demo' });
    const b = await postToken(h, { site: 'demo' });
    expect(a.status).toBe(200);
    expect(a.body).toMatchObject({ site: 'demo', mode: 'anonymous', expires_in: 60 });
    expect(String(a.body.userid)).toMatch(/^demo:anon-[\w-]{22}$/);
    expect(a.body.userid).not.toBe(b.body.userid);
    expect(a.headers.get('access-control-allow-origin')).toBe(DEMO_ORIGIN);
    const token = String(a.body.token);
    expect(await upgrade(h, token, DEMO_ORIGIN)).toBe(101);
    expect(await upgrade(h, token, 'http://127.0.0.1:5173')).toBe(101);
    expect(await upgrade(h, token, 'https://evil.example')).toBe(403);
    expect(await upgrade(h, token, '')).toBe(403);
    expect(await upgrade(h, token, DEMO_ORIGIN, `&userid=${encodeURIComponent(String(b.body.userid))}`)).toBe(
      401,
    );
  });

  it('cannot choose or change the userid', async () => {
    const h = await production();
    expect((await postToken(h, { site: 'demo', userid: 'victim' })).body).toMatchObject({
      error: 'invalid_request',
    });
    expect((await postToken(h, { site: 'demo', sub: 'victim' })).status).toBe(400);
    const dev = await postToken(h, '', DEMO_ORIGIN, '?userid=victim');
    expect(dev).toMatchObject({ status: 404, body: { error: 'dev_tokens_disabled' } });
  });

  it('renew keeps the same visitor; nothing else can be renewed into it', async () => {
    const h = await production();
    const first = await postToken(h, { site: 'demo' });
    const renewed = await postToken(h, { site: 'demo', renew: first.body.token });
    expect(renewed.status).toBe(200);
    expect(renewed.body.userid).toBe(first.body.userid);
    // A dev token signed with the gateway's own secret is not an anonymous visitor of the site.
    const tokens = createTokenService({ secret: 's'.repeat(32), ttlSeconds: 60 });
    const dev = (await tokens.issue('victim')).token;
    expect((await postToken(h, { site: 'demo', renew: dev })).body).toMatchObject({ error: 'invalid_token' });
    const otherSite = (await tokens.issue('guarded:anon-x', { site: 'guarded', mode: 'anonymous' })).token;
    expect((await postToken(h, { site: 'demo', renew: otherSite })).status).toBe(401);
    expect((await postToken(h, { site: 'demo', renew: 'garbage' })).status).toBe(401);
  });

  it('refuses an origin the site does not list, and a request without one', async () => {
    const h = await production();
    const evil = await postToken(h, { site: 'demo' }, 'https://evil.example');
    expect(evil).toMatchObject({ status: 403, body: { error: 'origin_not_allowed' } });
    // The refusal is readable by the page (so a widget there can say why), and holds no token.
    expect(evil.headers.get('access-control-allow-origin')).toBe('https://evil.example');
    expect(evil.body.token).toBeUndefined();
    expect((await postToken(h, { site: 'demo' }, '')).status).toBe(403);
    expect((await postToken(h, { site: 'nope' })).body).toMatchObject({ error: 'unknown_site' });
  });

  it('limits tokens per client IP and site', async () => {
    const h = await production({ TOKEN_RATE_LIMIT_PER_MINUTE: '2' });
    const from = (ip: string) =>
      fetch(`${h.base}/token`, {
        method: 'POST',
        headers: { origin: DEMO_ORIGIN, 'x-real-ip': ip },
        body: '{"site":"demo"}',
      }).then((r) => r.status);
    expect([await from('198.51.100.1'), await from('198.51.100.1'), await from('198.51.100.1')]).toEqual([
      200, 200, 429,
    ]);
    expect(await from('198.51.100.2')).toBe(200);
  });
});

describe('signed identities (acme)', () => {
  const origin = 'https://www.acme.example';

  it('a host-signed identity gives a token for exactly that user, namespaced by the site', async () => {
    const h = await production();
    const identity = await hostJwt({ sub: 'alice', iat: now(), exp: now() + 300 });
    const r = await postToken(h, { site: 'acme', identity }, origin);
    expect(r.body).toMatchObject({ userid: 'acme:alice', site: 'acme', mode: 'signed' });
    expect(await upgrade(h, String(r.body.token), origin)).toBe(101);
    // A token of acme is refused on any other site's pages.
    expect(await upgrade(h, String(r.body.token), DEMO_ORIGIN)).toBe(403);
  });

  it('refuses forged, expired, long-lived, unsigned and wrongly signed identities', async () => {
    const h = await production();
    const t = now();
    const cases = [
      await hostJwt({ sub: 'alice', iat: t, exp: t + 300 }, 'another-secret-'.repeat(3)),
      await hostJwt({ sub: 'alice', iat: t - 900, exp: t - 100 }),
      await hostJwt({ sub: 'alice', iat: t, exp: t + 3600 }),
      await hostJwt({ sub: 'alice', exp: t + 300 }),
      await hostJwt({ sub: 'alice', iat: t, exp: t + 300 }, ACME_SECRET, 'HS512'),
      await hostJwt({ sub: 'al ice', iat: t, exp: t + 300 }),
      `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(
        JSON.stringify({ sub: 'alice', iat: t, exp: t + 300 }),
      ).toString('base64url')}.`,
    ];
    for (const identity of cases) {
      expect((await postToken(h, { site: 'acme', identity }, origin)).body).toMatchObject({
        error: 'invalid_identity',
      });
    }
    // The demo site takes no signed identities at all, whoever signed them.
    const good = await hostJwt({ sub: 'alice', iat: t, exp: t + 300 });
    expect((await postToken(h, { site: 'demo', identity: good })).body).toMatchObject({
      error: 'mode_not_allowed',
    });
    expect((await postToken(h, { site: 'acme' }, origin)).body).toMatchObject({ error: 'mode_not_allowed' });
  });
});

describe('captcha', () => {
  async function verifier(answer: (body: URLSearchParams) => boolean): Promise<string> {
    const server = createServer((req, res) => {
      let text = '';
      req.on('data', (c: Buffer) => (text += c.toString()));
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ success: answer(new URLSearchParams(text)) }));
      });
    });
    servers.push(server);
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    const address = server.address();
    if (!address || typeof address === 'string') throw new Error('no port');
    return `http://127.0.0.1:${address.port}/siteverify`;
  }

  function sites(verifyUrl: string) {
    return JSON.stringify({
      sites: [
        {
          id: 'guarded',
          origins: ['https://guarded.example'],
          identity: ['anonymous'],
          captcha: { secret: 'captcha-secret', verify_url: verifyUrl },
        },
      ],
    });
  }

  it('anonymous visitors of a site with a captcha must pass it, checked server-side', async () => {
    const seen: URLSearchParams[] = [];
    const url = await verifier((body) => {
      seen.push(body);
      return body.get('response') === 'human';
    });
    const h = await production({ SITES: sites(url) });
    const origin = 'https://guarded.example';
    expect((await postToken(h, { site: 'guarded' }, origin)).body).toMatchObject({ error: 'captcha_failed' });
    expect((await postToken(h, { site: 'guarded', captcha: 'bot' }, origin)).status).toBe(403);
    const ok = await postToken(h, { site: 'guarded', captcha: 'human' }, origin);
    expect(ok.body).toMatchObject({ mode: 'anonymous', site: 'guarded' });
    expect(seen.at(-1)?.get('secret')).toBe('captcha-secret');
    expect(seen.at(-1)?.get('remoteip')).toBe('127.0.0.1');
  });

  it('an unreachable verifier is an outage (503), not a pass', async () => {
    const h = await production();
    const r = await postToken(h, { site: 'guarded', captcha: 'human' }, 'https://guarded.example');
    expect(r).toMatchObject({ status: 503, body: { error: 'upstream_unavailable' } });
  });
});

describe('history API', () => {
  it('shows the token’s user their own conversations and messages, nobody else’s', async () => {
    const h = await production();
    const alice = await postToken(h, { site: 'demo' });
    const bob = await postToken(h, { site: 'demo' });
    const userid = String(alice.body.userid);
    const turn = (role: string, content: string, time: string) =>
      JSON.stringify({ role, content, request_id: 'r1', time });
    await h.store.listAppend(
      REDIS_KEYS.history(userid, 'c1'),
      [turn('user', 'hello there', '2026-01-01T10:00:00Z'), turn('assistant', 'hi', '2026-01-01T10:00:01Z')],
      { maxLength: 20 },
    );
    await h.store.listAppend(
      REDIS_KEYS.conversations(userid),
      [JSON.stringify({ conversation_id: 'c1', title: 'hello there', updated_at: '2026-01-01T10:00:01Z' })],
      { maxLength: 20 },
    );
    const get = (path: string, token: unknown, origin = DEMO_ORIGIN) =>
      fetch(`${h.base}${path}`, { headers: { authorization: `Bearer ${String(token)}`, origin } });

    const list = await get('/api/v1/conversations', alice.body.token);
    expect(list.status).toBe(200);
    expect(list.headers.get('access-control-allow-origin')).toBe(DEMO_ORIGIN);
    expect(await list.json()).toEqual({
      conversations: [{ conversation_id: 'c1', title: 'hello there', updated_at: '2026-01-01T10:00:01Z' }],
    });
    const one = await get('/api/v1/conversations/c1', alice.body.token);
    expect(await one.json()).toEqual({
      conversation_id: 'c1',
      messages: [
        { role: 'user', content: 'hello there', request_id: 'r1', time: '2026-01-01T10:00:00Z' },
        { role: 'assistant', content: 'hi', request_id: 'r1', time: '2026-01-01T10:00:01Z' },
      ],
    });
    expect(await (await get('/api/v1/conversations', bob.body.token)).json()).toEqual({ conversations: [] });
    expect((await get('/api/v1/conversations/c1', bob.body.token)).status).toBe(404);
    expect((await get('/api/v1/conversations', 'forged')).status).toBe(401);
    expect((await get('/api/v1/conversations', alice.body.token, 'https://evil.example')).status).toBe(403);
    expect((await fetch(`${h.base}/api/v1/conversations`)).status).toBe(401);
    // Found by the fuzz suite: a segment that is not UTF-8 once decoded was a 500.
    expect((await get('/api/v1/conversations/%ff', alice.body.token)).status).toBe(400);
  });
});

describe('budgets', () => {
  it('a user at the daily budget gets budget_exceeded, before anything reaches Kafka', async () => {
    const h2 = await production({ DAILY_TOKEN_BUDGET_PER_USER: '50' });
    const visitor = await postToken(h2, { site: 'demo' });
    const userid = String(visitor.body.userid);
    await h2.store.incrementWindow(REDIS_KEYS.userBudget(userid, utcDay(Date.now())), 60_000, 50);
    const socket = new WebSocket(`${h2.wsBase}/ws?token=${String(visitor.body.token)}&ack=1`, {
      origin: DEMO_ORIGIN,
    });
    const frames: Array<Record<string, unknown>> = [];
    socket.on('message', (d) => frames.push(JSON.parse(String(d)) as Record<string, unknown>));
    await new Promise((done) => socket.once('open', done));
    socket.send(JSON.stringify({ type: 'message', content: 'hello', id: 'm1' }));
    await expect.poll(() => frames.length).toBe(1);
    expect(frames[0]).toMatchObject({ type: 'error', code: 'budget_exceeded', request_id: 'm1' });
    socket.close();
  });
});
