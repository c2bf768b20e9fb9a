/**
 * `/ready` tells the truth (issue 11 item 4): on the real stack, a gateway, the ai-consumer and the
 * message-relay are moved onto a Redis of this test's own, which is then stopped. Each answers 503
 * naming `redis` and why, `npm run stack -- status` (table and `--json`) shows the failing check
 * under the service, and once that Redis is back all three answer 200 again.
 *
 * The Redis every other test file shares (the global setup's) is never touched: only the
 * throwaway one on a kernel-chosen port goes down.
 */
import { createServer } from 'node:net';
import { readyBodySchema, type ReadyBody } from '@relay/common/ops';
import { waitFor } from '@relay/common/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDefinition, stopDefinition, type ServiceDefinition } from '../scripts/infra/harness.js';
import { redis } from '../scripts/infra/redis.js';
import {
  stackCli,
  stackDown,
  stackKill,
  stackStartWith,
  stackStatus,
  stackUp,
  stackUrls,
  type StackServiceName,
  type StackServiceStatus,
} from '../scripts/stack/testing.js';

/** One service of each kind: the uWS gateway and the two ops-server services. */
const MOVED = ['message-relay', 'ai-consumer', 'gateway-1'] as const satisfies readonly StackServiceName[];

/** Its own pid and data files (the harness keys them by name), so it never stops the shared one. */
const throwawayRedis: ServiceDefinition = { ...redis, name: 'redis-readiness-test' };

/** A port nothing listens on now, from the kernel's ephemeral range (away from every fixed port). */
function freePort(): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolvePromise(port));
    });
  });
}

function readyUrl(name: (typeof MOVED)[number]): string {
  return `http://127.0.0.1:${stackUrls().ports[name]}/ready`;
}

async function ready(name: (typeof MOVED)[number]): Promise<{ status: number; body: ReadyBody }> {
  const res = await fetch(readyUrl(name));
  return { status: res.status, body: readyBodySchema.parse(await res.json()) };
}

const statusOf = (all: StackServiceStatus[], name: StackServiceName) => all.find((s) => s.name === name);

describe('/ready names the failing dependency, and the stack status shows it', () => {
  let redisPort: number;
  const start = () => startDefinition(throwawayRedis, { port: redisPort });

  beforeAll(async () => {
    await stackUp({ LOG_LEVEL: 'warn' });
    redisPort = await freePort();
    await start();
    for (const name of MOVED) await stackKill(name);
    await Promise.all(MOVED.map((name) => stackStartWith(name, { REDIS_PORT: String(redisPort) })));
  }, 180_000);

  afterAll(async () => {
    await stopDefinition(throwawayRedis);
    // The moved services point at a Redis that is gone: the next file's stackUp starts them afresh.
    await stackDown();
  }, 120_000);

  it('every service answers 200 with each dependency ok', async () => {
    for (const name of MOVED) {
      const { status, body } = await ready(name);
      expect(status, name).toBe(200);
      expect(body).toMatchObject({ status: 'ready', failing: [] });
      expect(body.checks.kafka, name).toEqual({ status: 'ok' });
      expect(body.checks.redis, name).toEqual({ status: 'ok' });
      expect(body.checks.draining, name).toEqual({ status: 'ok' });
    }
    expect((await ready('ai-consumer')).body.checks).toMatchObject({
      consuming: { status: 'ok' },
      model: { status: 'ok' },
    });
    expect((await ready('message-relay')).body.checks.subscription).toEqual({ status: 'ok' });
    expect((await ready('gateway-1')).body.service).toBe('websocket-server');
  });

  it('with their Redis stopped, each answers 503 naming redis; status shows it; back to 200 after', async () => {
    await stopDefinition(throwawayRedis);
    const refused = new RegExp(`ECONNREFUSED.*:${redisPort}`);

    for (const name of MOVED) {
      const answer = await waitFor(
        async () => {
          const r = await ready(name);
          // Right after the drop the reason is "connection lost"; once the client's first
          // reconnect was refused it names that error, which is what an operator needs.
          const named = refused.test(r.body.checks.redis?.reason ?? '');
          return r.status === 503 && r.body.failing.includes('redis') && named ? r : undefined;
        },
        // The services ping Redis every 2 s.
        { timeoutMs: 15_000, intervalMs: 250, message: `${name} /ready 503 naming redis and ECONNREFUSED` },
      );
      expect(answer.body).toMatchObject({ status: 'not_ready', failing: ['redis'] });
      expect(answer.body.checks.kafka, name).toEqual({ status: 'ok' });
      expect(answer.body.checks.redis?.status).toBe('failing');
      expect(answer.body.checks.redis?.reason, name).toMatch(refused);
    }

    const statuses = await stackStatus();
    for (const name of MOVED) {
      expect(statusOf(statuses, name), name).toMatchObject({
        healthy: false,
        failing: [{ check: 'redis', reason: expect.stringContaining('ECONNREFUSED') as string }],
      });
      expect(statusOf(statuses, name)?.pid).not.toBeNull();
    }
    // What did not move is healthy and says nothing more.
    expect(statusOf(statuses, 'gateway-2')).toEqual({
      name: 'gateway-2',
      pid: expect.any(Number) as number,
      port: stackUrls().ports['gateway-2'],
      healthy: true,
    });

    const asJson = await stackCli(['status', '--json']);
    expect(asJson.code).toBe(0);
    const parsed = JSON.parse(asJson.stdout) as StackServiceStatus[];
    expect(statusOf(parsed, 'message-relay')?.failing?.[0]?.check).toBe('redis');
    const table = await stackCli(['status']);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(
      /^message-relay\s+unhealthy\s+\d+\s+\S+\n {2}redis failing: .*ECONNREFUSED/m,
    );
    expect(table.stdout).toMatch(/^ai-consumer\s+unhealthy\s+\d+\s+\S+\n {2}redis failing: /m);
    expect(table.stdout).toMatch(/^gateway-1\s+unhealthy\s+\d+\s+\S+\n {2}redis failing: /m);

    await start();
    for (const name of MOVED) {
      await waitFor(async () => (await ready(name)).status === 200, {
        timeoutMs: 20_000,
        intervalMs: 250,
        message: `${name} /ready 200 after Redis came back`,
      });
    }
    const recovered = await stackStatus();
    for (const name of MOVED) {
      const status = statusOf(recovered, name);
      expect(status?.healthy, name).toBe(true);
      expect(status && 'failing' in status, name).toBe(false);
    }
  }, 90_000);
});
