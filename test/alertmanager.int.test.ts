/**
 * The alerting path on the real local stack: kill the ai-consumer, and ServiceDown goes from
 * Prometheus through Alertmanager to a webhook this test serves; start it again, and the resolution
 * arrives the same way.
 *
 * How the test configs differ from production, and nothing else:
 * - Prometheus: prometheus.local.yml with scrape and evaluation every 1 s (production 5 s), and
 *   alerts.yml with ServiceDown's `for:` at 2 s (production 1 m);
 * - Alertmanager: alertmanager.yml with every receiver sending to this test's webhook
 *   (`/<receiver>`, so routing shows), group_wait and group_interval 1 s on every route
 *   (production 30 s / 5 m, critical 10 s), repeat_interval 1 h.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from '@relay/common/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { z } from 'zod';
import { stackDown, stackKill, stackStart, stackUp, stackUrls } from '../scripts/stack/testing.js';

const root = resolve(fileURLToPath(new URL('.', import.meta.url)), '..');
const at = (...parts: string[]) => join(root, ...parts);

/** Alertmanager's webhook payload (version 4), the parts this test reads. */
const notificationSchema = z.object({
  version: z.literal('4'),
  receiver: z.string(),
  status: z.enum(['firing', 'resolved']),
  alerts: z.array(
    z.object({
      status: z.enum(['firing', 'resolved']),
      labels: z.record(z.string(), z.string()),
      annotations: z.record(z.string(), z.string()),
      startsAt: z.string(),
      endsAt: z.string(),
    }),
  ),
});
type Notification = z.infer<typeof notificationSchema> & { path: string; at: number };

const routeSchema: z.ZodType<Route> = z.lazy(() =>
  z
    .object({
      group_wait: z.string().optional(),
      group_interval: z.string().optional(),
      repeat_interval: z.string().optional(),
      routes: z.array(routeSchema).optional(),
    })
    .passthrough(),
);
interface Route {
  group_wait?: string;
  group_interval?: string;
  repeat_interval?: string;
  routes?: Route[];
  [key: string]: unknown;
}
const alertmanagerSchema = z
  .object({ route: routeSchema, receivers: z.array(z.object({ name: z.string() }).passthrough()) })
  .passthrough();
const rulesSchema = z.object({
  groups: z.array(z.object({ name: z.string(), rules: z.array(z.record(z.string(), z.unknown())) })),
});

/** Production routing, every wait a second, every receiver this test's webhook. */
function testAlertmanagerConfig(production: string, webhook: string): string {
  const config = alertmanagerSchema.parse(parseYaml(production));
  const quick = (route: Route): Route => ({
    ...route,
    group_wait: '1s',
    group_interval: '1s',
    repeat_interval: '1h',
    ...(route.routes ? { routes: route.routes.map(quick) } : {}),
  });
  return stringifyYaml({
    ...config,
    route: quick(config.route),
    receivers: config.receivers.map((r) => ({
      name: r.name,
      webhook_configs: [{ url: `${webhook}/${r.name}`, send_resolved: true }],
    })),
  });
}

/** alerts.yml with ServiceDown's hold cut to 2 s. */
function testRules(production: string): string {
  const rules = rulesSchema.parse(parseYaml(production));
  const serviceDown = rules.groups.flatMap((g) => g.rules).find((r) => r.alert === 'ServiceDown');
  if (!serviceDown) throw new Error('alerts.yml has no ServiceDown');
  serviceDown.for = '2s';
  return stringifyYaml(rules);
}

/** prometheus.local.yml scraping and evaluating every second, with the test rules. */
function testPrometheusConfig(production: string, rulesFile: string): string {
  const config = z
    .object({ global: z.record(z.string(), z.unknown()) })
    .passthrough()
    .parse(parseYaml(production));
  return stringifyYaml({
    ...config,
    global: { ...config.global, scrape_interval: '1s', evaluation_interval: '1s', scrape_timeout: '1s' },
    rule_files: [rulesFile],
  });
}

describe('an alert fires and resolves through Alertmanager (real stack)', () => {
  const received: Notification[] = [];
  let server: Server | undefined;
  let dir = '';

  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      req.on('end', () => {
        const parsed = notificationSchema.safeParse(JSON.parse(body));
        if (parsed.success) received.push({ ...parsed.data, path: req.url ?? '', at: Date.now() });
        res.writeHead(parsed.success ? 200 : 400).end();
      });
    });
    await new Promise<void>((done) => server?.listen(0, '127.0.0.1', done));
    const address = server.address();
    if (!address || typeof address === 'string') throw new Error('no webhook port');
    const webhook = `http://127.0.0.1:${address.port}`;

    dir = await mkdtemp(join(tmpdir(), 'relay-alerting-'));
    const rulesFile = join(dir, 'alerts.yml');
    await writeFile(rulesFile, testRules(await readFile(at('prometheus', 'alerts.yml'), 'utf8')));
    await writeFile(
      join(dir, 'prometheus.yml'),
      testPrometheusConfig(await readFile(at('prometheus', 'prometheus.local.yml'), 'utf8'), rulesFile),
    );
    await writeFile(
      join(dir, 'alertmanager.yml'),
      testAlertmanagerConfig(await readFile(at('prometheus', 'alertmanager.yml'), 'utf8'), webhook),
    );
    // Prometheus and Alertmanager must start with the test configs.
    await stackDown();
    await stackUp({
      PROMETHEUS_CONFIG: join(dir, 'prometheus.yml'),
      ALERTMANAGER_CONFIG: join(dir, 'alertmanager.yml'),
    });
  });

  afterAll(async () => {
    await stackDown();
    await new Promise<void>((done) => (server ? server.close(() => done()) : done()));
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const serviceDown = (status: 'firing' | 'resolved') =>
    received.find(
      (n) =>
        n.status === status &&
        n.alerts.some(
          (a) =>
            a.labels.alertname === 'ServiceDown' && a.labels.job === 'ai-consumer' && a.status === status,
        ),
    );

  it('kill ai-consumer → ServiceDown at the pager webhook; start it → resolved', async () => {
    const { prometheus, ports } = stackUrls();
    const target = `127.0.0.1:${ports['ai-consumer']}`;
    const upOf = async () => {
      const query = encodeURIComponent(`up{job="ai-consumer",instance="${target}"}`);
      const body = (await (await fetch(`${prometheus}/api/v1/query?query=${query}`)).json()) as {
        data: { result: Array<{ value: [number, string] }> };
      };
      return body.data.result[0]?.value[1];
    };
    // Scraped and up before the kill, so the alert can only come from the kill.
    await waitFor(async () => (await upOf()) === '1', { timeoutMs: 30_000, message: 'ai-consumer up' });
    expect(serviceDown('firing')).toBeUndefined();

    const killedAt = Date.now();
    await stackKill('ai-consumer');
    const firing = await waitFor(() => serviceDown('firing'), {
      timeoutMs: 30_000,
      intervalMs: 100,
      message: 'ServiceDown firing at the webhook',
    });
    const firedAfterMs = firing.at - killedAt;

    const restartAt = Date.now();
    await stackStart('ai-consumer');
    const healthyAt = Date.now();
    const resolved = await waitFor(() => serviceDown('resolved'), {
      timeoutMs: 30_000,
      intervalMs: 100,
      message: 'ServiceDown resolved at the webhook',
    });

    // The ops server answers /metrics before the consumer has joined its group (/ready), so the
    // resolution may arrive before the restart counts as healthy.
    const timings = {
      firing_after_kill_ms: firedAfterMs,
      restart_until_ready_ms: healthyAt - restartAt,
      resolved_after_restart_ms: resolved.at - restartAt,
    };
    process.stderr.write(`[alerting] ${JSON.stringify(timings)}\n`);

    // Routed by severity to the pager, with what an operator needs.
    expect(firing.path).toBe('/pager');
    const alert = firing.alerts.find((a) => a.labels.alertname === 'ServiceDown');
    expect(alert?.labels).toMatchObject({ severity: 'critical', job: 'ai-consumer', instance: target });
    expect(alert?.annotations.summary).toBe(`ai-consumer at ${target} is down`);
    expect(alert?.annotations.runbook).toMatch(/npm run stack -- start/);
    expect(resolved.path).toBe('/pager');
    const done = resolved.alerts.find((a) => a.labels.alertname === 'ServiceDown');
    expect(Date.parse(done?.endsAt ?? '')).toBeGreaterThan(Date.parse(done?.startsAt ?? ''));
    // 1 s scrapes, a 2 s hold, 1 s evaluations and group waits: a few seconds, not minutes.
    expect(firedAfterMs).toBeLessThan(15_000);
    expect(resolved.at - restartAt).toBeLessThan(30_000);
    // The Watchdog goes its own way, and only it.
    for (const n of received) {
      expect(n.path === '/watchdog', n.path).toBe(n.alerts.every((a) => a.labels.alertname === 'Watchdog'));
    }
  }, 120_000);
});
