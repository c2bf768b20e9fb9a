import {
  createMemoryBus,
  createMemoryPubSubHub,
  createMemoryStore,
  createMetrics,
  loadConfig,
  type Bus,
  type KeyValueStore,
  type Metrics,
  type PubSub,
} from '@relay/common';
import { silentLogger } from '@relay/common/testing';
import { deliveryFragment } from '@relay/common';
import { gatewayFragment, sitesFor } from '../config.js';
import { presenceFragment } from '../presence/options.js';
import { createGateway, type Gateway } from '../gateway.js';
import { createTokenService } from '../token-service.js';
import { loadUws } from '../uws.js';
import { connectClient, fetchToken, type TestClient } from './ws-client.js';

export const TEST_ENV: Record<string, string> = {
  JWT_SECRET: 's'.repeat(32),
  TOKEN_TTL_SECONDS: '60',
  TOKEN_RATE_LIMIT_PER_MINUTE: '10000',
  RATE_LIMIT_MESSAGES: '10000',
  DRAIN_TIMEOUT_MS: '5000',
  // The harness' clients get tokens with POST /token?userid= (a test runs on loopback).
  DEV_TOKENS: 'true',
};

export interface HarnessOptions {
  /** Shared with other gateways or the test's "relay". @default a new memory store */
  store?: KeyValueStore;
  /** The gateway's own pub/sub client. @default a client of a new hub */
  pubsub?: PubSub;
  /** @default a connected memory bus */
  bus?: Bus;
  /** Extra gateway variables (over {@link TEST_ENV}). */
  env?: Record<string, string>;
  serverId?: string;
  /** @default 0 (a free port) */
  port?: number;
}

export interface Harness {
  gateway: Gateway;
  metrics: Metrics;
  store: KeyValueStore;
  bus: Bus;
  base: string;
  wsBase: string;
  /** ws URL for a user with a fresh token; `query` is appended as is. */
  url(userid: string, query?: string): Promise<string>;
  /** Opens a test client (`&ack=1` by default); it is closed by `close()`. */
  open(userid: string, query?: string): Promise<TestClient>;
  /** A metric's value (summed over label sets matching `labels`). */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  close(): Promise<void>;
}

/** A gateway on real uWS (port 0) with in-process transports unless given others. */
export async function startGateway(options: HarnessOptions = {}): Promise<Harness> {
  const env = { ...TEST_ENV, ...options.env };
  const config = loadConfig(
    { gateway: gatewayFragment, delivery: deliveryFragment, presence: presenceFragment },
    env,
  );
  const store = options.store ?? createMemoryStore();
  const ownBus = options.bus === undefined;
  const bus = options.bus ?? createMemoryBus({ defaultPartitions: 2 });
  if (ownBus) await bus.connect();
  const serverId = options.serverId ?? 'gw-test';
  const metrics = createMetrics({ service: 'websocket-server', instance: serverId, defaultMetrics: false });
  const gateway = createGateway({
    uws: loadUws().uws,
    sites: sitesFor(config.gateway, '127.0.0.1'),
    settings: config.gateway,
    delivery: config.delivery,
    presence: config.presence,
    host: '127.0.0.1',
    port: options.port ?? 0,
    serverId,
    logger: silentLogger,
    metrics,
    bus,
    store,
    pubsub: options.pubsub ?? createMemoryPubSubHub().client(),
    tokens: createTokenService({
      secret: config.gateway.jwtSecret,
      ttlSeconds: config.gateway.tokenTtlSeconds,
    }),
  });
  const { port } = await gateway.start();
  const base = `http://127.0.0.1:${port}`;
  const wsBase = `ws://127.0.0.1:${port}`;
  const clients: TestClient[] = [];
  const url = async (userid: string, query = '&ack=1') =>
    `${wsBase}/ws?token=${await fetchToken(base, userid)}&userid=${userid}${query}`;
  return {
    gateway,
    metrics,
    store,
    bus,
    base,
    wsBase,
    url,
    async open(userid, query) {
      const c = await connectClient(await url(userid, query));
      clients.push(c);
      return c;
    },
    async metric(name, labels = {}) {
      const metric = metrics.registry.getSingleMetric(name);
      if (!metric) return 0;
      const { values } = await metric.get();
      return values
        .filter((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l))
        .reduce((sum, v) => sum + v.value, 0);
    },
    async close() {
      for (const c of clients.splice(0)) {
        c.socket.resume();
        await c.close();
      }
      await gateway.close();
      if (ownBus) await bus.close();
    },
  };
}
