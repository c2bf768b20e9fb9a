import { randomUUID } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { waitFor } from '@relay/common/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectClient, fetchToken } from '../../websocket-server/src/testing/ws-client.js';
import type { TestClient } from '../../websocket-server/src/testing/ws-client.js';
import { infraPaths } from '../infra/paths.js';
import {
  stackCli as cli,
  stackDown,
  stackKill,
  stackServiceNames,
  stackStart,
  stackStatus,
  stackToken,
  stackUp,
  stackUrls,
} from './testing.js';
import type { StackUpResult } from './testing.js';

async function json(url: string): Promise<Record<string, unknown>> {
  const res = await fetch(url);
  expect(res.status, url).toBe(200);
  const body: unknown = await res.json();
  expect(typeof body).toBe('object');
  return body as Record<string, unknown>;
}

describe('npm run stack (all ten services as local processes)', () => {
  let first: StackUpResult;
  const clients: TestClient[] = [];
  const connect = async (userid: string, query = ''): Promise<TestClient> => {
    const token = await stackToken(userid);
    const client = await connectClient(
      `${stackUrls().ws}?token=${encodeURIComponent(token)}&userid=${encodeURIComponent(userid)}${query}`,
    );
    clients.push(client);
    return client;
  };

  beforeAll(async () => {
    first = await stackUp();
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    // Kafka and Redis stay: the global setup owns them and later test files need them.
    await stackDown();
    const left = (await stackStatus()).filter((s) => s.name !== 'kafka' && s.name !== 'redis');
    expect(left.filter((s) => s.pid !== null)).toEqual([]);
  });

  it('up brings all ten up and healthy; status has the documented shape', async () => {
    const { ports } = stackUrls();
    expect(first.services.map((s) => s.name)).toEqual([...stackServiceNames]);
    const statuses = await stackStatus();
    expect(statuses.map((s) => s.name)).toEqual([...stackServiceNames]);
    for (const status of statuses) {
      expect(Object.keys(status)).toEqual(['name', 'pid', 'port', 'healthy']);
      expect(status).toEqual({
        name: status.name,
        pid: expect.any(Number) as number,
        port: ports[status.name],
        healthy: true,
      });
    }
  });

  it('status --json prints exactly the array on stdout, the table goes without --json', async () => {
    const asJson = await cli(['status', '--json']);
    expect(asJson.code).toBe(0);
    const parsed: unknown = JSON.parse(asJson.stdout);
    expect(parsed).toEqual(await stackStatus());
    const table = await cli(['status']);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^NAME\s+STATE\s+PID\s+ADDRESS$/m);
    const port = stackUrls().ports['gateway-1'];
    expect(table.stdout).toMatch(
      new RegExp(`^gateway-1\\s+healthy\\s+\\d+\\s+127\\.0\\.0\\.1:${port}$`, 'm'),
    );
  });

  it('nginx answers /health from a gateway and serves the UI', async () => {
    const health = await json(`${stackUrls().http}/health`);
    expect(health.status).toBe('ok');
    expect(['gateway-1', 'gateway-2']).toContain(health.server_id);
    const page = await fetch(`${stackUrls().http}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
  });

  it('least_conn spreads WebSocket connections through nginx over both gateways', async () => {
    for (let i = 0; i < 10; i++) await connect(`spread-${randomUUID()}`);
    const { gateways } = stackUrls();
    for (const url of Object.values(gateways)) {
      const health = await json(`${url}/health`);
      expect(health.total_connections, url).toBeGreaterThan(0);
    }
  });

  it('both gateways share one JWT secret, kept 0600 in the work dir', async () => {
    const mode = (await stat(join(infraPaths(process.env).workDir, 'stack', 'jwt-secret'))).mode & 0o777;
    expect(mode).toBe(0o600);
    const { gateways } = stackUrls();
    const token = await fetchToken(gateways['gateway-1'], 'shared');
    const client = await connectClient(`${gateways['gateway-2'].replace('http', 'ws')}/ws?token=${token}`);
    clients.push(client);
    expect(client.closed).toBeNull();
  });

  it('a message through nginx gets an ack, then a response', async () => {
    const userid = `pipeline-${randomUUID()}`;
    const client = await connect(userid);
    const id = randomUUID();
    client.send({ type: 'message', id, content: 'Hello through the stack', userid });
    await client.next((f) => f.type === 'ack' && f.request_id === id);
    const response = await client.next((f) => f.type === 'response' && f.request_id === id, 30_000);
    expect(response.userid).toBe(userid);
    expect(typeof response.content).toBe('string');
    const types = client.frames.filter((f) => f.request_id === id).map((f) => f.type);
    expect(types.indexOf('ack')).toBeLessThan(types.indexOf('response'));
  });

  it('Prometheus scrapes the gateways, ai-consumer and message-relay on the ports in use', async () => {
    const { ports, prometheus } = stackUrls();
    const wanted = (['gateway-1', 'gateway-2', 'ai-consumer', 'message-relay'] as const).map(
      (name) => `127.0.0.1:${ports[name]}`,
    );
    await waitFor(
      async () => {
        const body = await json(`${prometheus}/api/v1/targets?state=active`);
        const data = body.data as { activeTargets: { scrapeUrl: string; health: string }[] };
        const up = new Set(
          data.activeTargets.filter((t) => t.health === 'up').map((t) => new URL(t.scrapeUrl).host),
        );
        return wanted.every((target) => up.has(target));
      },
      { timeoutMs: 30_000, intervalMs: 500, message: `targets ${wanted.join(' ')} up` },
    );
  });

  it("Prometheus loads the alerting rules and sends to the stack's Alertmanager (the Watchdog arrives)", async () => {
    const { prometheus, alertmanager, ports } = stackUrls();
    const rules = await json(`${prometheus}/api/v1/rules?type=alert`);
    const names = (rules.data as { groups: { rules: { name: string }[] }[] }).groups.flatMap((g) =>
      g.rules.map((r) => r.name),
    );
    expect(names).toEqual(expect.arrayContaining(['Watchdog', 'ServiceDown', 'TTFTBudgetBurnFast']));
    const managers = await json(`${prometheus}/api/v1/alertmanagers`);
    expect(JSON.stringify(managers.data)).toContain(`127.0.0.1:${ports.alertmanager}`);
    await waitFor(
      async () => {
        const res = await fetch(`${alertmanager}/api/v2/alerts?filter=alertname%3D%22Watchdog%22`);
        const alerts = (await res.json()) as Array<{ labels: Record<string, string> }>;
        return alerts.some((a) => a.labels.severity === 'none');
      },
      // Prometheus' first send may go before it has discovered the Alertmanager (dropped); it sends
      // firing alerts again every minute (--rules.alert.resend-delay).
      { timeoutMs: 90_000, intervalMs: 1000, message: 'the Watchdog in Alertmanager' },
    );
  }, 120_000);

  it('kill gateway-1 crashes it; nginx keeps answering; start brings it back healthy', async () => {
    const before = (await stackStatus()).find((s) => s.name === 'gateway-1');
    await stackKill('gateway-1');
    const killed = (await stackStatus()).find((s) => s.name === 'gateway-1');
    expect(killed).toMatchObject({ pid: null, healthy: false });
    expect(before?.pid).not.toBeNull();
    // The refused upstream is skipped for the next one (proxy_next_upstream error).
    const health = await json(`${stackUrls().http}/health`);
    expect(health.server_id).toBe('gateway-2');

    const restarted = await stackStart('gateway-1');
    expect(restarted).toMatchObject({ name: 'gateway-1', healthy: true });
    expect(restarted.pid).not.toBe(before?.pid);
    const after = (await stackStatus()).find((s) => s.name === 'gateway-1');
    expect(after).toEqual(restarted);
  });

  it('a second up finds everything running, starts nothing and is fast', async () => {
    const again = await stackUp();
    expect(again.started).toEqual([]);
    expect(again.services.every((s) => s.healthy)).toBe(true);
    expect(again.durationMs).toBeLessThan(5_000);
  });
});
