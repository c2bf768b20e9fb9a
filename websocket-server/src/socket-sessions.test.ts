import {
  createMemoryBus,
  createMemoryPubSubHub,
  createMemoryStore,
  createMetrics,
  loadConfig,
  renderMetrics,
} from '@relay/common';
import { silentLogger, waitFor } from '@relay/common/testing';
import { describe, expect, it, onTestFinished } from 'vitest';
import { configFragments, sitesFor } from './config.js';
import { createSocketSessions, validResumePoint, type GatewaySocket } from './socket-sessions.js';
import { createTokenService } from './token-service.js';
import type { UserData } from './user-data.js';

interface TestSocket extends GatewaySocket {
  sent: Array<Record<string, unknown>>;
  closedWith: { code?: number; reason?: string } | null;
}

function setup(env: Record<string, string> = {}) {
  const config = loadConfig(configFragments, {
    JWT_SECRET: 'x'.repeat(32),
    MAX_CONNECTIONS_PER_USER: '1',
    DEV_TOKENS: 'true',
    ...env,
  });
  const tokens = createTokenService({ secret: config.gateway.jwtSecret, ttlSeconds: 60 });
  const metrics = createMetrics({ service: 'test', instance: 'test', defaultMetrics: false });
  const hub = createMemoryPubSubHub();
  let clock = 1_700_000_000_000;
  const sessions = createSocketSessions<TestSocket>({
    settings: config.gateway,
    serverId: 'test',
    logger: silentLogger,
    metrics,
    bus: createMemoryBus(),
    store: createMemoryStore(),
    pubsub: hub.client(),
    tokens,
    sites: sitesFor(config.gateway, '127.0.0.1'),
    now: () => clock,
  });
  const admit = async (query: string, origin = '', ip = '127.0.0.1') =>
    sessions.admit({ query: new URLSearchParams(query), origin, ip });
  /** A socket for an admitted upgrade; `end` runs the close handler at once, as uWS does. */
  const socketFor = (data: UserData): TestSocket => {
    const socket: TestSocket = {
      sent: [],
      closedWith: null,
      getUserData: () => data,
      send: (message) => {
        socket.sent.push(JSON.parse(message) as Record<string, unknown>);
        return 1;
      },
      getBufferedAmount: () => 0,
      end: (code, reason) => {
        socket.closedWith = { code, reason };
        sessions.closed(socket);
      },
    };
    return socket;
  };
  const openSocket = async (userid: string, ip = '127.0.0.1', query = '') => {
    const token = (await tokens.issue(userid)).token;
    const admission = await admit(`token=${token}${query}`, '', ip);
    if (!admission.ok) throw new Error(`upgrade refused: ${admission.reason}`);
    const socket = socketFor(admission.data);
    sessions.open(socket);
    await waitFor(() => socket.getUserData().connection.state !== 'opening');
    return socket;
  };
  const send = (socket: TestSocket, text: string) => sessions.message(socket, Buffer.from(text), false);
  return {
    sessions,
    tokens,
    admit,
    socketFor,
    openSocket,
    send,
    hub,
    metrics,
    tick: (ms: number) => (clock += ms),
    now: () => clock,
  };
}

describe('upgrade admission (both gateways)', () => {
  it('lets a valid token through with the socket state the query asks for', async () => {
    const { tokens, admit, now } = setup();
    const token = (await tokens.issue('alice')).token;
    const admission = await admit(`token=${token}&userid=alice&stream=1&last_event_id=${now() - 5}-0`);
    if (!admission.ok) throw new Error('refused');
    const { connection } = admission.data;
    expect([connection.userid, connection.stream, connection.extensions, connection.state]).toEqual([
      'alice',
      true,
      true,
      'opening',
    ]);
    expect(connection.snapshot().position).toBe(`${now() - 5}-0`);
  });

  it('refuses with the status and reason of each failed check', async () => {
    const { tokens, admit } = setup({ ALLOWED_ORIGINS: 'https://ok.example' });
    const token = (await tokens.issue('alice')).token;
    expect(await admit(`token=${token}`, 'https://evil.example')).toEqual({
      ok: false,
      status: 403,
      reason: 'origin_not_allowed',
    });
    expect(await admit(`token=${token}&last_event_id=nope`, 'https://ok.example')).toMatchObject({
      status: 400,
      reason: 'invalid_last_event_id',
    });
    expect(await admit('token=garbage')).toMatchObject({ status: 401, reason: 'invalid_token' });
    expect(await admit(`token=${token}&userid=bob`)).toMatchObject({ status: 401, reason: 'invalid_token' });
  });

  it('takes only a real resume point: a stream id of sane size, not ahead of the clock', () => {
    const now = 1_700_000_000_000;
    expect(validResumePoint(`${now}-0`, now)).toBe(true);
    expect(validResumePoint('0-0', now)).toBe(true);
    expect(validResumePoint(`${now + 59_000}-3`, now)).toBe(true);
    expect(validResumePoint(`${now + 61_000}-0`, now)).toBe(false);
    expect(validResumePoint('99999999999999999-0', now)).toBe(false);
    expect(validResumePoint(`1-${'9'.repeat(21)}`, now)).toBe(false);
    expect(validResumePoint('-1-0', now)).toBe(false);
    expect(validResumePoint('1-0 ', now)).toBe(false);
  });

  it('counts an upgrade from its admission: concurrent upgrades of one user cannot all pass', async () => {
    const { tokens, admit, socketFor, sessions } = setup();
    const token = (await tokens.issue('alice')).token;
    const [a, b] = await Promise.all([admit(`token=${token}`), admit(`token=${token}`)]);
    expect([a?.ok, b?.ok].sort()).toEqual([false, true]);
    const admitted = a.ok ? a : b.ok ? b : undefined;
    if (!admitted?.ok) throw new Error('none admitted');
    // Given up before the 101 (the client went away): its place goes back.
    sessions.abandoned(admitted.data);
    const again = await admit(`token=${token}`);
    expect(again.ok).toBe(true);
    if (!again.ok) return;
    const socket = socketFor(again.data);
    sessions.open(socket);
    // abandoned() after the socket opened changes nothing: the close gives the place back.
    sessions.abandoned(again.data);
    expect(socket.getUserData().connection.state).not.toBe('closed');
    expect(await admit(`token=${token}`)).toMatchObject({ status: 429, reason: 'too_many_connections' });
    socket.end(1000, 'bye');
    expect((await admit(`token=${token}`)).ok).toBe(true);
  });

  it('caps connections per client IP and per gateway', async () => {
    const { openSocket, admit, tokens } = setup({
      MAX_CONNECTIONS_PER_USER: '10',
      MAX_CONNECTIONS_PER_IP: '2',
      MAX_CONNECTIONS: '3',
    });
    await openSocket('u1', '10.0.0.1');
    const second = await openSocket('u2', '10.0.0.1');
    const t3 = (await tokens.issue('u3')).token;
    expect(await admit(`token=${t3}`, '', '10.0.0.1')).toMatchObject({
      status: 429,
      reason: 'too_many_connections_from_ip',
    });
    await openSocket('u3', '10.0.0.2');
    expect(await admit(`token=${t3}`, '', '10.0.0.3')).toMatchObject({ status: 503, reason: 'server_full' });
    second.end(1000, 'bye');
    expect((await admit(`token=${t3}`, '', '10.0.0.1')).ok).toBe(true);
  });

  it('refuses past the connections per user and while draining', async () => {
    const { sessions, tokens, admit, openSocket } = setup();
    await openSocket('alice');
    const token = (await tokens.issue('alice')).token;
    expect(await admit(`token=${token}`)).toMatchObject({ status: 429, reason: 'too_many_connections' });
    await sessions.drainAndClose();
    expect(await admit(`token=${token}`)).toMatchObject({ status: 503, reason: 'draining' });
  });
});

describe('client frames (both gateways)', () => {
  it('answers the two frames that once stopped the process with an error code', async () => {
    const { openSocket, send } = setup();
    const s = await openSocket('alice');
    send(s, '{"type":{"toString":1}}');
    send(s, `{"type":${'['.repeat(4000)}${']'.repeat(4000)}}`);
    expect(s.sent.map((f) => f.code)).toEqual(['unknown_type', 'unknown_type']);
    expect(s.closedWith).toBeNull();
  });

  it('counts every frame type against the frame budget: rate_limited, then 1008 past twice it', async () => {
    const { openSocket, send, tick, metrics } = setup({
      RATE_LIMIT_FRAMES: '3',
      RATE_LIMIT_WINDOW_MS: '1000',
    });
    const s = await openSocket('alice');
    send(s, '{"type":"hello"}');
    send(s, '{"type":"hello","stream":false}');
    send(s, 'not json');
    expect(s.sent.map((f) => f.code)).toEqual(['invalid_json']);
    send(s, '{"type":"hello"}');
    expect(s.sent.at(-1)).toMatchObject({ type: 'error', code: 'rate_limited' });
    send(s, '{"type":"cancel","request_id":"x"}');
    send(s, '{"type":"hello"}');
    expect(s.closedWith).toBeNull();
    send(s, '{"type":"hello"}');
    expect(s.closedWith).toEqual({ code: 1008, reason: 'rate_limited' });
    expect((await renderMetrics(metrics.registry)).body).toMatch(
      /gateway_frames_limited_total\{verdict="limited"[^}]*\} 3/,
    );
    tick(1000);
  });

  it('a new window gives the budget back', async () => {
    const { openSocket, send, tick } = setup({ RATE_LIMIT_FRAMES: '1', RATE_LIMIT_WINDOW_MS: '1000' });
    const s = await openSocket('alice');
    send(s, 'x');
    send(s, 'x');
    expect(s.sent.map((f) => f.code)).toEqual(['invalid_json', 'rate_limited']);
    tick(1000);
    send(s, 'x');
    expect(s.sent.map((f) => f.code)).toEqual(['invalid_json', 'rate_limited', 'invalid_json']);
  });

  it('refuses a cancel for a request the user does not have pending', async () => {
    const { openSocket, send } = setup();
    const s = await openSocket('alice', '127.0.0.1', '&ack=1');
    send(s, '{"type":"cancel","request_id":"never-sent"}');
    await waitFor(() => s.sent.length === 1);
    expect(s.sent[0]).toMatchObject({ type: 'error', code: 'unknown_request', request_id: 'never-sent' });
  });

  it('a bug while delivering to one socket closes that socket with 1011; the others still get the frame', async () => {
    const { openSocket, hub, metrics } = setup({ MAX_CONNECTIONS_PER_USER: '3' });
    const healthy = await openSocket('alice');
    const broken = await openSocket('alice');
    broken.send = () => {
      throw new TypeError('bug in send');
    };
    await hub.client().publish('user:alice', '{"type":"response","content":"hi","userid":"alice"}');
    await waitFor(() => healthy.sent.length === 1);
    expect(broken.closedWith).toEqual({ code: 1011, reason: 'internal_error' });
    expect(healthy.closedWith).toBeNull();
    expect((await renderMetrics(metrics.registry)).body).toMatch(
      /handler_errors_total\{handler="deliver"[^}]*\} 1$/m,
    );
  });
});

describe('gauges for alerts', () => {
  it('a scrape after ready() sees service_ready, the upstreams and the connection limit', async () => {
    const { sessions, metrics } = setup({ MAX_CONNECTIONS: '1234' });
    // Closed after the test: watchRedis pings on a timer.
    onTestFinished(() => sessions.drainAndClose());
    const text = async () => (await renderMetrics(metrics.registry)).body;
    // Before the Redis watch has answered, the gateway is not ready.
    sessions.ready();
    expect(await text()).toMatch(/^service_ready\{[^}]*\} 0$/m);
    expect(await text()).toMatch(/^gateway_upstream_up\{upstream="redis"[^}]*\} 0$/m);
    expect(await text()).toMatch(/^gateway_max_connections\{[^}]*\} 1234$/m);
    await sessions.watchRedis();
    await waitFor(() => sessions.ready().checks.redis);
    expect(await text()).toMatch(/^gateway_upstream_up\{upstream="redis"[^}]*\} 1$/m);
    // The (memory) bus was never connected: Kafka is down, so the gateway is still not ready.
    expect(await text()).toMatch(/^gateway_upstream_up\{upstream="kafka"[^}]*\} 0$/m);
    expect(await text()).toMatch(/^service_ready\{[^}]*\} 0$/m);
  });
});
