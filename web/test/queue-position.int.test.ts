/**
 * "Waiting (n ahead)" in a real browser (headless Chromium) against `npm start` with one model
 * worker: other users' prompts hold the worker and the line, so the visitor's prompt waits, the
 * widget (and the chat page) say how many are ahead, and the streamed text replaces that.
 * Screenshots go to test-artifacts/.
 */
import type { Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connectClient, fetchToken, type TestClient } from '../../websocket-server/src/testing/ws-client.js';
import {
  html,
  openBrowser,
  screenshotPath,
  startHost,
  startRelay,
  type HostSite,
  type Relay,
} from './support.js';

describe('queue position in the browser (MAX_WORKERS=1)', () => {
  let relay: Relay;
  let host: HostSite;
  const clients: TestClient[] = [];
  let users = 0;

  beforeAll(async () => {
    relay = await startRelay({
      MAX_WORKERS: '1',
      // ~2.5 s per answer: the line stays long enough to look at.
      MOCK_OPENAI_MIN_TOKENS: '40',
      MOCK_OPENAI_TOKEN_MS: '60',
      QUEUE_UPDATE_MS: '100',
    });
    host = await startHost({
      '/': html(`<h1>Acme</h1><script src="${relay.url}/widget.js" data-site="demo" async></script>`),
    });
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.close().catch(() => undefined);
  });
  afterAll(async () => {
    await host?.close();
    if (relay) expect(await relay.stop()).toBe(0);
  });

  /** Another user (dev token, from Node) whose prompt takes the worker or a place in the line. */
  async function otherUser(stream: boolean): Promise<TestClient> {
    const userid = `queue-other-${++users}`;
    const token = await fetchToken(relay.url, userid);
    const c = await connectClient(
      `${relay.url.replace('http', 'ws')}/ws?token=${token}${stream ? '&stream=1' : ''}`,
    );
    clients.push(c);
    return c;
  }

  /** One prompt running (from its first delta on) and one waiting ahead of whatever comes next. */
  async function fillTheLine(): Promise<void> {
    const running = await otherUser(true);
    running.send({ type: 'message', content: 'take the only worker' });
    await running.next((f) => f.type === 'response.delta', 15_000);
    const ahead = await otherUser(false);
    ahead.send({ type: 'message', content: 'wait ahead of the visitor' });
    // In the line before the visitor's prompt (the in-process bus takes it at once; a margin).
    await new Promise((resolve) => setTimeout(resolve, 300));
  }

  /** Frames the page's socket received. */
  function framesOf(page: Page): Array<Record<string, unknown>> {
    const frames: Array<Record<string, unknown>> = [];
    page.on('websocket', (ws) =>
      ws.on('framereceived', ({ payload }) => {
        if (typeof payload === 'string') frames.push(JSON.parse(payload) as Record<string, unknown>);
      }),
    );
    return frames;
  }

  it('the widget shows "Waiting (1 ahead)" in a live region, then the streamed answer replaces it', async () => {
    const browser = await openBrowser();
    try {
      const page = await browser.context.newPage();
      const frames = framesOf(page);
      await page.goto(`${host.url}/`);
      await page.locator('relay-chat .launcher').click();
      await page.locator('relay-chat .status').filter({ hasText: 'Online' }).waitFor({ timeout: 15_000 });

      await fillTheLine();
      await page.getByRole('textbox', { name: 'Message' }).fill('am I in a queue?');
      await page.keyboard.press('Enter');

      const answer = page.locator('relay-chat .msg.assistant').last();
      const waiting = answer.locator('.waiting');
      await waiting.filter({ hasText: 'Waiting (1 ahead)' }).waitFor({ timeout: 15_000 });
      expect(await answer.getAttribute('data-queued')).toBe('1');
      expect(await waiting.getAttribute('role')).toBe('status');
      expect(await waiting.getAttribute('aria-live')).toBe('polite');
      expect(await waiting.isVisible()).toBe(true);
      await page.screenshot({ path: await screenshotPath('widget-queued') });
      await page
        .locator('relay-chat .panel')
        .screenshot({ path: await screenshotPath('widget-queued-panel') });

      // The one ahead started: next in line.
      await waiting.filter({ hasText: 'Waiting (next in line)' }).waitFor({ timeout: 15_000 });
      // Then the answer streams over it.
      await answer.and(page.locator('[data-streaming="true"]')).waitFor({ timeout: 15_000 });
      expect(await answer.locator('.waiting').count()).toBe(0);
      expect(await answer.getAttribute('data-queued')).toBeNull();
      await answer.and(page.locator('[data-final="true"]')).waitFor({ timeout: 20_000 });
      expect(await answer.textContent()).toMatch(/^Echo: am I in a queue\?/);

      const positions = frames.filter((f) => f.type === 'queued').map((f) => f.position);
      expect(positions[0]).toBe(1);
      expect(positions.at(-1)).toBe(0);
      const types = frames.map((f) => f.type);
      expect(types.lastIndexOf('queued')).toBeLessThan(types.indexOf('response.delta'));
    } finally {
      await browser.close();
    }
  });

  it('the chat page shows the same waiting text', async () => {
    const browser = await openBrowser();
    try {
      const page = await browser.context.newPage();
      await page.goto(`${relay.url}/`);
      await page.getByTestId('status').filter({ hasText: 'Connected' }).waitFor({ timeout: 15_000 });
      await fillTheLine();
      await page.getByTestId('input').fill('and here?');
      await page.keyboard.press('Enter');
      const answer = page.locator('#log .msg.assistant').last();
      await answer.locator('.waiting[role="status"]').filter({ hasText: 'Waiting (1 ahead)' }).waitFor({
        timeout: 15_000,
      });
      await page.screenshot({ path: await screenshotPath('chat-page-queued') });
      await answer.and(page.locator('[data-final="true"]')).waitFor({ timeout: 30_000 });
      expect(await answer.locator('.waiting').count()).toBe(0);
    } finally {
      await browser.close();
    }
  });
});
