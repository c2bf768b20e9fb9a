import {
  createMemoryBus,
  createMemoryPubSubHub,
  createMemoryStore,
  createMetrics,
  loadConfig,
} from '@relay/common';
import { silentLogger } from '@relay/common/testing';
import { describe, expect, it } from 'vitest';
import { configFragments } from './config.js';
import { createSocketSessions } from './socket-sessions.js';
import type { OutboundSocket } from './socket-delivery.js';
import { createTokenService } from './token-service.js';

function setup(env: Record<string, string> = {}) {
  const config = loadConfig(configFragments, {
    JWT_SECRET: 'x'.repeat(32),
    MAX_CONNECTIONS_PER_USER: '1',
    ...env,
  });
  const tokens = createTokenService({ secret: config.gateway.jwtSecret, ttlSeconds: 60 });
  const sessions = createSocketSessions<OutboundSocket>({
    settings: config.gateway,
    serverId: 'test',
    logger: silentLogger,
    metrics: createMetrics({ service: 'test', instance: 'test' }),
    bus: createMemoryBus(),
    store: createMemoryStore(),
    pubsub: createMemoryPubSubHub().client(),
    tokens,
  });
  const admit = async (query: string, origin = '') =>
    sessions.admit({ query: new URLSearchParams(query), origin, ip: '127.0.0.1' });
  return { sessions, tokens, admit };
}

describe('upgrade admission (both gateways)', () => {
  it('lets a valid token through with the socket state the query asks for', async () => {
    const { tokens, admit } = setup();
    const token = (await tokens.issue('alice')).token;
    const admission = await admit(`token=${token}&userid=alice&stream=1&last_event_id=5-0`);
    expect(admission).toMatchObject({
      ok: true,
      data: { userid: 'alice', stream: true, extensions: true, resumeFrom: '5-0', closed: false },
    });
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

  it('refuses past the connections per user and while draining', async () => {
    const { sessions, tokens, admit } = setup();
    const token = (await tokens.issue('alice')).token;
    const first = await admit(`token=${token}`);
    if (!first.ok) throw new Error('first upgrade refused');
    const socket: OutboundSocket = {
      getUserData: () => first.data,
      send: () => 1,
      getBufferedAmount: () => 0,
      end: () => undefined,
    };
    await sessions.open(socket);
    expect(await admit(`token=${token}`)).toMatchObject({ status: 429, reason: 'too_many_connections' });
    await sessions.drainAndClose();
    expect(await admit(`token=${token}`)).toMatchObject({ status: 503, reason: 'draining' });
  });
});
