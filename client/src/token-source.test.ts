import { describe, expect, it } from 'vitest';
import { RelayHttpError } from './http.js';
import { memoryStorage, storedValues } from './storage.js';
import { fakeFetch, type FetchCall } from './testing/fakes.js';
import { createTokenSource, type Identity } from './token-source.js';

function setup(identity: Identity, respond: (call: FetchCall, n: number) => [number, unknown]) {
  let clock = 1_000_000;
  let n = 0;
  const storage = memoryStorage();
  const { fetch, calls } = fakeFetch((call) => respond(call, n++));
  const make = () =>
    createTokenSource({
      url: 'http://relay/',
      identity,
      fetch,
      stored: storedValues(storage, 'relay:demo'),
      now: () => clock,
    });
  return {
    source: make(),
    make,
    calls,
    storage,
    advance: (ms: number) => (clock += ms),
  };
}

const anon = (userid: string, token: string, expires_in = 900) => ({
  token,
  userid,
  expires_in,
  site: 'demo',
  mode: 'anonymous',
});

describe('token source, anonymous mode', () => {
  it('creates a visitor, keeps the token, and a later page load reuses it without asking', async () => {
    const t = setup({ mode: 'anonymous', site: 'demo' }, () => [200, anon('demo:anon-a', 'T1')]);
    const session = await t.source.get();
    expect(session).toMatchObject({ token: 'T1', userid: 'demo:anon-a', mode: 'anonymous', site: 'demo' });
    expect(t.calls).toEqual([
      { url: 'http://relay/token', method: 'POST', headers: expect.anything(), body: { site: 'demo' } },
    ]);
    expect(t.calls[0]?.headers['Content-Type']).toBe('application/json');

    const reloaded = t.make();
    expect(reloaded.current?.userid).toBe('demo:anon-a');
    expect((await reloaded.get()).token).toBe('T1');
    expect(t.calls).toHaveLength(1);
  });

  it('renews before expiry with {site, renew} and stays the same visitor', async () => {
    const t = setup({ mode: 'anonymous', site: 'demo' }, (_call, n) => [
      200,
      anon('demo:anon-a', `T${n + 1}`),
    ]);
    await t.source.get();
    t.advance(900_000 - 60_000 - 1);
    expect((await t.source.get()).token).toBe('T1');
    t.advance(2);
    expect((await t.source.get()).token).toBe('T2');
    expect(t.calls[1]?.body).toEqual({ site: 'demo', renew: 'T1' });
  });

  it('refresh: true renews even a fresh token (the gateway refused it)', async () => {
    const t = setup({ mode: 'anonymous', site: 'demo' }, (_call, n) => [
      200,
      anon('demo:anon-a', `T${n + 1}`),
    ]);
    await t.source.get();
    expect((await t.source.get({ refresh: true })).token).toBe('T2');
  });

  it('a renewal refused as invalid_token (too old, another deployment) starts a new visitor', async () => {
    const t = setup({ mode: 'anonymous', site: 'demo' }, (call, n) =>
      n === 0
        ? [200, anon('demo:anon-a', 'T1')]
        : (call.body as Record<string, unknown>).renew
          ? [401, { error: 'invalid_token', message: 'too old' }]
          : [200, anon('demo:anon-b', 'T3')],
    );
    await t.source.get();
    const next = await t.source.get({ refresh: true });
    expect(next.userid).toBe('demo:anon-b');
    expect(t.calls.map((c) => c.body)).toEqual([
      { site: 'demo' },
      { site: 'demo', renew: 'T1' },
      { site: 'demo' },
    ]);
    expect(t.make().current?.userid).toBe('demo:anon-b');
  });

  it('a renewal that fails for another reason keeps the visitor and says whether to retry', async () => {
    const t = setup({ mode: 'anonymous', site: 'demo' }, (_call, n) =>
      n === 0
        ? [200, anon('demo:anon-a', 'T1')]
        : [429, { error: 'rate_limited', message: 'slow', retry_after_ms: 2000 }],
    );
    await t.source.get();
    const err = await t.source.get({ refresh: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RelayHttpError);
    expect(err).toMatchObject({ status: 429, code: 'rate_limited', retryable: true, retryAfterMs: 2000 });
    expect(t.source.current?.token).toBe('T1');
  });

  it('a refused origin is not retryable', async () => {
    const t = setup({ mode: 'anonymous', site: 'demo' }, () => [
      403,
      { error: 'origin_not_allowed', message: 'no' },
    ]);
    await expect(t.source.get()).rejects.toMatchObject({ code: 'origin_not_allowed', retryable: false });
    expect(t.storage.size).toBe(0);
  });

  it('asks for the captcha of a site that has one', async () => {
    const t = setup({ mode: 'anonymous', site: 'demo', captcha: async () => 'cap-1' }, () => [
      200,
      anon('demo:anon-a', 'T1'),
    ]);
    await t.source.get();
    expect(t.calls[0]?.body).toEqual({ site: 'demo', captcha: 'cap-1' });
  });

  it('concurrent callers share one request', async () => {
    const t = setup({ mode: 'anonymous', site: 'demo' }, () => [200, anon('demo:anon-a', 'T1')]);
    const [a, b] = await Promise.all([t.source.get(), t.source.get()]);
    expect(a).toBe(b);
    expect(t.calls).toHaveLength(1);
  });

  it('an answer that is not a token is an error, not a session', async () => {
    const t = setup({ mode: 'anonymous', site: 'demo' }, () => [200, { token: '' }]);
    await expect(t.source.get()).rejects.toMatchObject({ code: 'invalid_response' });
  });
});

describe('token source, signed and dev modes', () => {
  it('signed: exchanges the identity the callback gives, a fresh one per token, and keeps nothing', async () => {
    let jwts = 0;
    const t = setup({ mode: 'signed', site: 'acme', identity: async () => `jwt-${++jwts}` }, (_call, n) => [
      200,
      { token: `S${n}`, userid: 'acme:bob', expires_in: 300, site: 'acme', mode: 'signed' },
    ]);
    await t.source.get();
    await t.source.get({ refresh: true });
    expect(t.calls.map((c) => c.body)).toEqual([
      { site: 'acme', identity: 'jwt-1' },
      { site: 'acme', identity: 'jwt-2' },
    ]);
    expect(t.storage.size).toBe(0);
  });

  it('signed: a short token is renewed a tenth of its lifetime ahead', async () => {
    const t = setup({ mode: 'signed', site: 'acme', identity: 'jwt' }, (_call, n) => [
      200,
      { token: `S${n}`, userid: 'acme:bob', expires_in: 100 },
    ]);
    await t.source.get();
    expect(t.source.renewAt()).toBe(1_000_000 + 90_000);
    t.advance(90_000);
    expect((await t.source.get()).token).toBe('S1');
  });

  it('dev: the original POST /token?userid= with no body', async () => {
    const t = setup({ mode: 'dev', userid: 'user 1' }, () => [
      200,
      { token: 'D', userid: 'user 1', expires_in: 3600 },
    ]);
    expect(await t.source.get()).toMatchObject({ token: 'D', userid: 'user 1', mode: 'dev' });
    expect(t.calls[0]).toMatchObject({
      url: 'http://relay/token?userid=user%201',
      method: 'POST',
      body: undefined,
    });
  });

  it('a relay that cannot be reached is a retryable network_error', async () => {
    const source = createTokenSource({
      url: 'http://relay',
      identity: { mode: 'dev', userid: 'u' },
      fetch: async () => {
        throw new TypeError('Failed to fetch');
      },
      stored: storedValues(memoryStorage(), 'x'),
    });
    await expect(source.get()).rejects.toMatchObject({ status: 0, code: 'network_error', retryable: true });
  });
});

describe('token source, issued mode (a holder of the signing secret mints the tokens)', () => {
  it('asks issue() instead of /token: for the first token, again near expiry and on refresh', async () => {
    let n = 0;
    const t = setup(
      {
        mode: 'issued',
        issue: () =>
          Promise.resolve({ token: `I${++n}`, userid: 'load-1', expires_in: 3600, site: 'dev', mode: 'dev' }),
      },
      () => [500, { error: 'internal_error' }],
    );
    expect(await t.source.get()).toMatchObject({ token: 'I1', userid: 'load-1', site: 'dev', mode: 'dev' });
    expect((await t.source.get()).token).toBe('I1');
    expect((await t.source.get({ refresh: true })).token).toBe('I2');
    // Renewed a minute before expiry, like a /token session.
    expect(t.source.renewAt()).toBe(1_000_000 + 3_600_000 - 60_000);
    t.advance(3_600_000 - 60_000);
    expect((await t.source.get()).token).toBe('I3');
    expect(t.calls).toEqual([]);
    // Nothing is kept: the issuer is asked again after a reload.
    expect(t.storage.size).toBe(0);
  });

  it('an issued token without a mode counts as signed; an invalid one is an error, not a session', async () => {
    const plain = setup(
      { mode: 'issued', issue: () => Promise.resolve({ token: 'P', userid: 'u', expires_in: 60 }) },
      () => [500, {}],
    );
    expect(await plain.source.get()).toMatchObject({ mode: 'signed', site: undefined });
    const bad = setup(
      { mode: 'issued', issue: () => Promise.resolve({ token: '', userid: 'u', expires_in: 60 }) },
      () => [500, {}],
    );
    await expect(bad.source.get()).rejects.toMatchObject({ code: 'invalid_response' });
  });
});
