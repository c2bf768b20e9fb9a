import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext } from 'playwright-core';
import { spawnEntry, waitForLog, type SpawnedService } from '../../test/support/spawn-service.js';
import { buildWeb } from '../build.js';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Screenshots of the browser tests (git-ignored). */
export const ARTIFACTS = join(repoRoot, 'test-artifacts');

/** A free port in 47000–48000 on `host` (the range these tests may use). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = 47_000 + Math.floor(Math.random() * 1000);
    const ok = await new Promise<boolean>((resolve) => {
      const probe = createServer();
      probe.once('error', () => resolve(false));
      probe.listen(port, host, () => probe.close(() => resolve(true)));
    });
    if (ok) return port;
  }
  throw new Error('no free port in 47000-48000');
}

export interface Relay {
  app: SpawnedService;
  port: number;
  /** `http://localhost:<port>`: another origin than the host pages on 127.0.0.1. */
  url: string;
  stop(): Promise<number | null>;
}

/** `npm start` (app/main.ts) on a port of ours, with the web bundles built first. */
export async function startRelay(env: Record<string, string> = {}): Promise<Relay> {
  await buildWeb();
  const port = await freePort();
  const app = spawnEntry('app/main.ts', {
    PORT: String(port),
    MOCK_OPENAI_TTFT_MS: '50',
    MOCK_OPENAI_TOKEN_MS: '15',
    ...env,
  });
  await waitForLog(app, /ai-relay \(embedded\) on http/);
  return { app, port, url: `http://localhost:${port}`, stop: () => app.stop() };
}

export type Route = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

export interface HostSite {
  url: string;
  close(): Promise<void>;
}

/** A host site: a tiny HTTP server of pages (and, for the signed flow, its backend). */
export async function startHost(routes: Record<string, Route>, host = '127.0.0.1'): Promise<HostSite> {
  const port = await freePort(host);
  const server: Server = createServer((req, res) => {
    const route = routes[new URL(req.url ?? '/', 'http://x').pathname];
    if (!route) {
      res.writeHead(404).end();
      return;
    }
    Promise.resolve(route(req, res)).catch(() => res.writeHead(500).end());
  });
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  return {
    url: `http://${host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export const html =
  (body: string, head = ''): Route =>
  (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(
      `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Host</title>${head}</head><body>${body}</body></html>`,
    );
  };

/**
 * A host page's own styles, hostile on purpose: the widget's shadow root must keep them out.
 * (`!important` on every div, every button; a serif font; a coloured background.)
 */
export const HOSTILE_CSS = `<style>
  body { font: 17px/1.6 Georgia, serif; margin: 40px; background: #f7f3ea; color: #3b3b3b; }
  div { border: 3px dashed #d33 !important; padding: 12px !important; color: #d33 !important; }
  button { background: hotpink !important; font-size: 30px !important; }
  * { letter-spacing: 0.1em; }
</style>`;

export interface Browser {
  context: BrowserContext;
  close(): Promise<void>;
}

/** Headless Chromium with a fresh user-data-dir (no storage from another test). */
export async function openBrowser(viewport = { width: 1280, height: 800 }): Promise<Browser> {
  const dir = await mkdtemp(join(tmpdir(), 'relay-chromium-'));
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    viewport,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  return {
    context,
    async close() {
      await context.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export async function screenshotPath(name: string): Promise<string> {
  await mkdir(ARTIFACTS, { recursive: true });
  return join(ARTIFACTS, `${name}.png`);
}
