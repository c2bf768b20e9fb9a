/**
 * The widget in a real browser (headless Chromium): a host page on one origin (127.0.0.1:<A>)
 * embeds widget.js from the relay on another (localhost:<B>), as a customer's site would.
 * Screenshots go to test-artifacts/ (git-ignored).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { SignJWT } from 'jose';
import type { Page, WebSocket as PageSocket } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  HOSTILE_CSS,
  html,
  openBrowser,
  screenshotPath,
  startHost,
  startRelay,
  type HostSite,
  type Relay,
} from './support.js';

const SECRET = 'acme-test-secret-of-at-least-32-characters!';
const SITES = JSON.stringify({
  sites: [{ id: 'acme', origins: ['http://127.0.0.1:*'], identity: ['signed'], secret: SECRET }],
});

/** What a page did on the network that the tests look at. */
function watch(page: Page) {
  const tokens: Array<{ status: number; body: unknown }> = [];
  const sockets: PageSocket[] = [];
  const frames: Array<Record<string, unknown>> = [];
  page.on('response', async (response) => {
    if (new URL(response.url()).pathname !== '/token' || response.request().method() !== 'POST') return;
    tokens.push({ status: response.status(), body: await response.json().catch(() => undefined) });
  });
  page.on('websocket', (ws) => {
    sockets.push(ws);
    ws.on('framereceived', ({ payload }) => {
      if (typeof payload === 'string') frames.push(JSON.parse(payload) as Record<string, unknown>);
    });
  });
  return { tokens, sockets, frames };
}

const widget = (page: Page) => ({
  launcher: page.locator('relay-chat .launcher'),
  panel: page.locator('relay-chat .panel'),
  input: page.getByRole('textbox', { name: 'Message' }),
  stop: page.getByRole('button', { name: 'Stop generating' }),
  status: page.locator('relay-chat .status'),
  answers: page.locator('relay-chat .msg.assistant'),
  finals: page.locator('relay-chat .msg.assistant[data-final="true"]'),
  users: page.locator('relay-chat .msg.user'),
  notice: page.locator('relay-chat .notice'),
  live: page.locator('relay-chat .live'),
});

describe('the widget embedded on another origin', () => {
  let relay: Relay;
  let host: HostSite;
  let foreign: HostSite;

  beforeAll(async () => {
    relay = await startRelay({
      SITES,
      // Long enough answers to see them stream and to stop one.
      MOCK_OPENAI_MIN_TOKENS: '40',
      MOCK_OPENAI_TOKEN_MS: '60',
    });
    const script = `<script src="${relay.url}/widget.js" data-site="demo" async></script>`;
    const routes = {
      '/': html(
        `<h1>Acme</h1><p>A host page with its own styles.</p><div>host content</div>${script}`,
        HOSTILE_CSS,
      ),
      '/plain': html(`<h1>Acme</h1><div>host content</div>`, HOSTILE_CSS),
      // Signed mode: the page asks its own backend for the visitor's identity; RelayChat is queued.
      '/signed': html(
        `<h1>Acme, signed in as bob</h1>
         <script>
           window.RelayChat = window.RelayChat || [];
           RelayChat.push(['init', { site: 'acme', theme: { title: 'Acme support', accent: '#0f766e' },
             identity: () => fetch('/identity', { method: 'POST' }).then((r) => r.text()) }]);
           RelayChat.push(['open']);
           // The host listens to the widget: what it said, and when it opened.
           window.seen = [];
           RelayChat.push(['on', 'open', () => seen.push('open')]);
           RelayChat.push(['on', 'message', (m) => seen.push(m.role + ':' + m.content.slice(0, 20))]);
         </script>
         <script src="${relay.url}/widget.js" async></script>`,
      ),
      // The host's backend: signs who the visitor is with the site's secret (HS256).
      '/identity': async (_req: IncomingMessage, res: ServerResponse) => {
        const jwt = await new SignJWT({})
          .setProtectedHeader({ alg: 'HS256' })
          .setSubject('bob')
          .setIssuedAt()
          .setExpirationTime('5m')
          .sign(new TextEncoder().encode(SECRET));
        res.writeHead(200, { 'content-type': 'text/plain' }).end(jwt);
      },
    };
    host = await startHost(routes);
    // Another loopback address: an origin no site allows.
    foreign = await startHost(routes, '127.0.0.2');
  });

  afterAll(async () => {
    await host?.close();
    await foreign?.close();
    if (relay) expect(await relay.stop()).toBe(0);
  });

  it('adds no global but RelayChat, and its styles neither leak out nor let the host’s in', async () => {
    const browser = await openBrowser();
    try {
      const page = await browser.context.newPage();
      await page.goto(`${host.url}/plain`);
      const before = await page.evaluate(() => Object.keys(window));
      await page.goto(`${host.url}/`);
      await widget(page).launcher.waitFor();
      const after = await page.evaluate(() => Object.keys(window));
      expect(after.filter((k) => !before.includes(k))).toEqual(['RelayChat']);
      expect(await page.evaluate(() => typeof window.RelayChat.init)).toBe('function');

      // Host CSS (`div {… !important}`, `button {…}`) does not reach into the shadow root.
      const launcher = await widget(page).launcher.evaluate((el) => {
        const s = getComputedStyle(el);
        return { background: s.backgroundColor, fontSize: s.fontSize };
      });
      expect(launcher).toEqual({ background: 'rgb(79, 70, 229)', fontSize: '14.5px' });
      // …and the widget's CSS does not reach the host page.
      expect(await page.locator('h1').evaluate((el) => getComputedStyle(el).fontFamily)).toMatch(/Georgia/);
      expect(await page.locator('body > div').evaluate((el) => getComputedStyle(el).borderTopStyle)).toBe(
        'dashed',
      );
      await page.screenshot({ path: await screenshotPath('widget-closed') });
    } finally {
      await browser.close();
    }
  });

  it('an anonymous visitor chats with streaming; markdown is rendered safely; Escape closes', async () => {
    const browser = await openBrowser();
    try {
      const page = await browser.context.newPage();
      const net = watch(page);
      await page.goto(`${host.url}/`);
      const w = widget(page);
      // Nothing is asked of the relay before the visitor opens the chat.
      await w.launcher.waitFor();
      expect(net.tokens).toEqual([]);

      await w.launcher.click();
      await expect.poll(() => w.launcher.getAttribute('aria-expanded')).toBe('true');
      // Focus moves into the panel, onto the message box.
      await expect
        .poll(() => w.input.evaluate((el) => el.getRootNode() instanceof ShadowRoot && el.matches(':focus')))
        .toBe(true);
      await w.status.filter({ hasText: 'Online' }).waitFor({ timeout: 15_000 });
      expect(net.tokens).toHaveLength(1);
      expect(net.tokens[0]).toMatchObject({ status: 200, body: { site: 'demo', mode: 'anonymous' } });
      expect(String((net.tokens[0]?.body as { userid: string }).userid)).toMatch(/^demo:anon-/);
      await page.screenshot({ path: await screenshotPath('widget-open') });

      await w.input.fill('**bold** [docs](https://example.com/) <img src=x onerror=window.__xss=1>');
      await page.keyboard.press('Enter');
      await page.locator('relay-chat .msg.assistant[data-streaming="true"]').waitFor({ timeout: 15_000 });
      await expect.poll(() => w.stop.isVisible()).toBe(true);
      await page.screenshot({ path: await screenshotPath('widget-streaming') });
      await w.finals.first().waitFor({ timeout: 20_000 });

      const answer = w.finals.first();
      expect(await answer.textContent()).toMatch(/^Echo: bold docs <img src=x onerror=window.__xss=1>/);
      expect(await answer.locator('strong').textContent()).toBe('bold');
      const link = answer.locator('a');
      expect(await link.getAttribute('href')).toBe('https://example.com/');
      expect(await link.getAttribute('target')).toBe('_blank');
      expect(await link.getAttribute('rel')).toBe('noopener noreferrer');
      // The model's raw HTML is text: no element made of it, nothing ran.
      expect(await answer.locator('img').count()).toBe(0);
      expect(await page.evaluate(() => (window as { __xss?: unknown }).__xss)).toBeUndefined();

      // It streamed: several deltas, then one final whose content they add up to.
      const deltas = net.frames.filter((f) => f.type === 'response.delta');
      const final = net.frames.find((f) => f.type === 'response');
      expect(deltas.length).toBeGreaterThan(5);
      expect(deltas.map((d) => d.delta).join('')).toBe(final?.content);
      // The screen reader's live region got the complete answer once.
      expect(await w.live.textContent()).toBe(final?.content);

      await page.keyboard.press('Escape');
      await expect.poll(() => w.panel.isVisible()).toBe(false);
      await expect.poll(() => w.launcher.evaluate((el) => el.matches(':focus'))).toBe(true);

      // A reload: the same visitor (kept token, no new one), the conversation back from history.
      const finalText = await answer.textContent();
      await w.launcher.click();
      await page.reload();
      await w.finals.first().waitFor({ timeout: 15_000 });
      expect(await w.users.first().textContent()).toMatch(/^\*\*bold\*\*/);
      expect(await w.finals.first().textContent()).toBe(finalText);
      expect(net.tokens).toHaveLength(1);
      expect(net.sockets.at(-1)?.url()).toContain(
        encodeURIComponent((net.tokens[0]?.body as { userid: string }).userid),
      );
      await page.screenshot({ path: await screenshotPath('widget-reloaded') });
      // theme 'auto' follows the visitor's colour scheme.
      await page.emulateMedia({ colorScheme: 'dark' });
      expect(await w.panel.evaluate((el) => getComputedStyle(el).backgroundColor)).toBe('rgb(24, 24, 27)');
      await page.screenshot({ path: await screenshotPath('widget-dark') });
    } finally {
      await browser.close();
    }
  });

  it('stop cancels the answer: the final says finish_reason cancelled and the UI shows it', async () => {
    const browser = await openBrowser();
    try {
      const page = await browser.context.newPage();
      const net = watch(page);
      await page.goto(`${host.url}/`);
      const w = widget(page);
      await w.launcher.click();
      await w.status.filter({ hasText: 'Online' }).waitFor({ timeout: 15_000 });
      await w.input.fill('a long answer please');
      await page.keyboard.press('Enter');
      await page.locator('relay-chat .msg.assistant[data-streaming="true"]').waitFor({ timeout: 15_000 });
      await w.stop.click();
      const stopped = page.locator('relay-chat .msg.assistant[data-finish-reason="cancelled"]');
      await stopped.waitFor({ timeout: 15_000 });
      expect(await stopped.locator('.note').textContent()).toBe('Stopped');
      const final = net.frames.find((f) => f.type === 'response');
      expect(final).toMatchObject({ finish_reason: 'cancelled' });
      expect(net.frames.filter((f) => f.type === 'response')).toHaveLength(1);
      // The send button is back; the visitor can go on.
      await expect.poll(() => w.stop.isVisible()).toBe(false);
      await page.screenshot({ path: await screenshotPath('widget-stopped') });
    } finally {
      await browser.close();
    }
  });

  it('a page on an origin the site does not allow gets no token and opens no socket', async () => {
    const browser = await openBrowser();
    try {
      const page = await browser.context.newPage();
      const net = watch(page);
      await page.goto(`${foreign.url}/`);
      const w = widget(page);
      await w.launcher.click();
      await w.notice.waitFor({ state: 'visible', timeout: 15_000 });
      // The refusal is readable by the page (no token in it), so the widget says why and stops.
      await expect.poll(() => net.tokens.length).toBeGreaterThan(0);
      expect(net.tokens.map((t) => t.status)).toEqual([403]);
      expect(net.tokens[0]?.body).toMatchObject({ error: 'origin_not_allowed' });
      expect(await w.notice.textContent()).toMatch(/isn.t allowed/);
      expect(net.sockets).toEqual([]);
      expect(await w.status.getAttribute('data-state')).not.toBe('open');
    } finally {
      await browser.close();
    }
  });

  it('signed: the host backend’s identity becomes <site>:<sub>, through a queued init', async () => {
    const browser = await openBrowser();
    try {
      const page = await browser.context.newPage();
      const net = watch(page);
      await page.goto(`${host.url}/signed`);
      const w = widget(page);
      await w.status.filter({ hasText: 'Online' }).waitFor({ timeout: 15_000 });
      expect(net.tokens[0]).toMatchObject({
        status: 200,
        body: { userid: 'acme:bob', site: 'acme', mode: 'signed' },
      });
      expect(await page.locator('relay-chat #rc-title').textContent()).toBe('Acme support');
      await w.input.fill('hello from bob');
      await page.keyboard.press('Enter');
      await w.finals.first().waitFor({ timeout: 20_000 });
      expect(await w.finals.first().textContent()).toMatch(/^Echo: hello from bob/);
      expect(net.frames.find((f) => f.type === 'response')).toMatchObject({ userid: 'acme:bob' });
      expect(await page.evaluate(() => (window as unknown as { seen: string[] }).seen)).toEqual([
        'open',
        'user:hello from bob',
        'assistant:Echo: hello from bob',
      ]);
      await page.screenshot({ path: await screenshotPath('widget-signed') });
    } finally {
      await browser.close();
    }
  });

  it('at phone width (360 px) the open panel is full screen and usable', async () => {
    const browser = await openBrowser({ width: 360, height: 740 });
    try {
      const page = await browser.context.newPage();
      await page.goto(`${host.url}/`);
      const w = widget(page);
      await page.screenshot({ path: await screenshotPath('widget-phone-closed') });
      await w.launcher.click();
      await w.status.filter({ hasText: 'Online' }).waitFor({ timeout: 15_000 });
      expect(await w.panel.boundingBox()).toEqual({ x: 0, y: 0, width: 360, height: 740 });
      await w.input.fill('hi from a phone');
      await page.keyboard.press('Enter');
      await w.finals.first().waitFor({ timeout: 20_000 });
      const box = await w.finals.first().boundingBox();
      expect(box && box.x >= 0 && box.x + box.width <= 360).toBe(true);
      expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(360);
      await page.screenshot({ path: await screenshotPath('widget-phone-open') });
      // The close button is reachable on a phone (the launcher is under the panel).
      await page.getByRole('button', { name: 'Close chat' }).last().click();
      await expect.poll(() => w.panel.isVisible()).toBe(false);
    } finally {
      await browser.close();
    }
  });
});

declare global {
  interface Window {
    RelayChat: { init(options: unknown): void };
  }
}
