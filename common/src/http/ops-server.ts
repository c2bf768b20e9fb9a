import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { once } from '../lifecycle/once.js';
import { readinessGauge, renderMetrics, type Metrics } from '../metrics/metrics.js';
import { readyResponse, type Readiness } from '../readiness/checks.js';

export interface OpsServerOptions {
  /** Named in the `/ready` body. */
  service: string;
  host: string;
  port: number;
  /** The process registry: `/metrics` renders it, and `service_ready` is kept in it. */
  metrics: Metrics;
  /** Liveness body (SPEC: at least `status`, `service`, `server_id`). */
  health: () => Record<string, unknown>;
  /** Readiness: each dependency reachable, and not draining (`drainingCheck`). Cheap: no I/O. */
  ready: () => Readiness;
}

export interface OpsServer {
  start(): Promise<{ port: number }>;
  close(): Promise<void>;
}

/**
 * `/health`, `/ready` and `/metrics` for services that have no other HTTP surface. Every scrape
 * asks `ready()` first, so `service_ready` says what `/ready` would answer at that moment (no
 * prober calls `/ready` for Prometheus).
 */
export function createOpsServer(options: OpsServerOptions): OpsServer {
  const ready = readinessGauge(options.metrics);
  const json = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET') return json(res, 405, { error: 'method not allowed' });
    if (path === '/health') return json(res, 200, options.health());
    if (path === '/ready') {
      const answer = readyResponse(options.service, options.ready());
      return json(res, answer.statusCode, answer.body);
    }
    if (path === '/metrics') {
      ready.set(options.ready().ready ? 1 : 0);
      renderMetrics(options.metrics.registry).then(
        (m) => res.writeHead(200, { 'content-type': m.contentType }).end(m.body),
        (err: unknown) => json(res, 500, { error: String(err) }),
      );
      return;
    }
    json(res, 404, { error: 'not found' });
  });
  return {
    start: () =>
      new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(options.port, options.host, () => {
          const address = server.address();
          resolve({ port: typeof address === 'object' && address ? address.port : options.port });
        });
      }),
    close: once(
      () =>
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        }),
    ),
  };
}
