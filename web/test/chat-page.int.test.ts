/**
 * The chat page (websocket-server/public/index.html + chat.js) in headless Chromium against
 * `npm start`: the first page a developer opens. Screenshots go to test-artifacts/.
 */
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openBrowser, screenshotPath, startRelay, type Relay } from './support.js';

const chat = (page: Page) => ({
  status: page.getByTestId('status'),
  model: page.getByTestId('model'),
  input: page.getByTestId('input'),
  send: page.getByTestId('send'),
  stop: page.getByTestId('stop'),
  notice: page.getByTestId('notice'),
  newChat: page.getByTestId('new-chat'),
  conversations: page.locator('[data-testid="conversations"] .conversation'),
  users: page.locator('#log .msg.user'),
  finals: page.locator('#log .msg.assistant[data-final="true"]'),
  streaming: page.locator('#log .msg.assistant[data-streaming="true"]'),
  title: page.locator('#conversation-title'),
});

async function ask(page: Page, text: string): Promise<void> {
  const c = chat(page);
  const before = await c.finals.count();
  await c.input.fill(text);
  await page.keyboard.press('Enter');
  await expect.poll(() => c.finals.count(), { timeout: 20_000 }).toBe(before + 1);
}

describe('the chat page', () => {
  let relay: Relay;

  beforeAll(async () => {
    relay = await startRelay({ MOCK_OPENAI_MIN_TOKENS: '40', MOCK_OPENAI_TOKEN_MS: '40' });
  });
  afterAll(async () => {
    if (relay) expect(await relay.stop()).toBe(0);
  });

  it('anonymous by default: streams, shows the model, keeps conversations, restores them on reload', async () => {
    const browser = await openBrowser();
    try {
      const page = await browser.context.newPage();
      await page.goto(`${relay.url}/`);
      const c = chat(page);
      await c.status.filter({ hasText: 'Connected' }).waitFor({ timeout: 15_000 });
      await expect.poll(() => c.model.textContent()).toBe('mock model (bundled)');
      expect(await page.getByTestId('who').textContent()).toBe('anonymous visitor on demo');
      await page.screenshot({ path: await screenshotPath('chat-page-empty') });

      await c.input.fill('How do *streams* work?');
      await page.keyboard.press('Enter');
      await c.streaming.waitFor({ timeout: 15_000 });
      await expect.poll(() => c.stop.isVisible()).toBe(true);
      await page.screenshot({ path: await screenshotPath('chat-page-streaming') });
      await expect.poll(() => c.finals.count(), { timeout: 20_000 }).toBe(1);
      expect(await c.finals.first().locator('em').textContent()).toBe('streams');
      await expect.poll(() => c.conversations.count()).toBe(1);
      await expect.poll(() => c.title.textContent()).toBe('How do *streams* work?');

      // A second conversation, then back to the first.
      await c.newChat.click();
      await expect.poll(() => c.users.count()).toBe(0);
      await ask(page, 'Another topic entirely');
      await expect.poll(() => c.conversations.count()).toBe(2);
      await c.conversations.filter({ hasText: 'How do *streams* work?' }).click();
      await expect.poll(() => c.users.allTextContents()).toEqual(['How do *streams* work?']);
      await ask(page, 'And a follow-up');
      expect(await c.users.allTextContents()).toEqual(['How do *streams* work?', 'And a follow-up']);

      // A reload: the same visitor, the same conversation, from the history API.
      const answers = await c.finals.allTextContents();
      await page.reload();
      await c.status.filter({ hasText: 'Connected' }).waitFor({ timeout: 15_000 });
      await expect.poll(() => c.finals.allTextContents()).toEqual(answers);
      await expect.poll(() => c.conversations.count()).toBe(2);
      expect(await page.locator('.conversation[aria-current="true"] .conversation-title').textContent()).toBe(
        'How do *streams* work?',
      );
      await page.screenshot({ path: await screenshotPath('chat-page') });
      await page.emulateMedia({ colorScheme: 'dark' });
      await page.screenshot({ path: await screenshotPath('chat-page-dark') });
    } finally {
      await browser.close();
    }
  });

  it('stop cancels the answer and says so', async () => {
    const browser = await openBrowser();
    try {
      const page = await browser.context.newPage();
      await page.goto(`${relay.url}/`);
      const c = chat(page);
      await c.status.filter({ hasText: 'Connected' }).waitFor({ timeout: 15_000 });
      await c.input.fill('please write a long answer');
      await page.keyboard.press('Enter');
      await c.streaming.waitFor({ timeout: 15_000 });
      await c.stop.click();
      const stopped = page.locator('#log .msg.assistant[data-finish-reason="cancelled"]');
      await stopped.waitFor({ timeout: 15_000 });
      expect(await stopped.locator('.note').textContent()).toBe('Stopped');
      await expect.poll(() => c.send.isVisible()).toBe(true);
    } finally {
      await browser.close();
    }
  });

  it('dev mode with ?userid= (npm start has dev tokens on), at phone width', async () => {
    const browser = await openBrowser({ width: 360, height: 740 });
    try {
      const page = await browser.context.newPage();
      await page.goto(`${relay.url}/?userid=dev-alice`);
      const c = chat(page);
      await expect.poll(() => c.status.getAttribute('data-state'), { timeout: 15_000 }).toBe('open');
      expect(await page.getByTestId('who').textContent()).toBe('dev user dev-alice');
      await ask(page, 'hello from a phone');
      expect(await c.finals.first().textContent()).toMatch(/^Echo: hello from a phone/);
      expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(360);
      await page.screenshot({ path: await screenshotPath('chat-page-phone') });
      // The conversation list is a drawer on a phone: opened from the menu, closed with Escape.
      await page.getByRole('button', { name: 'Show conversations' }).click();
      await expect.poll(() => c.newChat.evaluate((el) => el.matches(':focus'))).toBe(true);
      await page.waitForTimeout(300); // the drawer's 0.2 s slide, for the screenshot
      await page.screenshot({ path: await screenshotPath('chat-page-phone-drawer') });
      await page.keyboard.press('Escape');
      await expect.poll(() => c.newChat.isVisible()).toBe(false);
    } finally {
      await browser.close();
    }
  });
});

describe('the chat page shows limits', () => {
  let relay: Relay;

  beforeAll(async () => {
    relay = await startRelay({
      // One model token a day per user: the first answer uses it up.
      DAILY_TOKEN_BUDGET_PER_USER: '1',
      // One message per 3 s: the second message, sent right after, is refused for a while first.
      RATE_LIMIT_MESSAGES: '1',
      RATE_LIMIT_WINDOW_MS: '3000',
    });
  });
  afterAll(async () => {
    if (relay) expect(await relay.stop()).toBe(0);
  });

  it('rate_limited while it retries, then budget_exceeded as the answer', async () => {
    const browser = await openBrowser();
    try {
      const page = await browser.context.newPage();
      await page.goto(`${relay.url}/`);
      const c = chat(page);
      await c.status.filter({ hasText: 'Connected' }).waitFor({ timeout: 15_000 });
      await ask(page, 'first');
      await c.input.fill('second');
      await page.keyboard.press('Enter');
      await page.locator('[data-testid="notice"][data-code="rate_limited"]').waitFor({ timeout: 10_000 });
      expect(await c.notice.textContent()).toMatch(/sending messages quickly/);
      await page.screenshot({ path: await screenshotPath('chat-page-rate-limited') });
      const refused = page.locator('#log .msg.assistant.error[data-code="budget_exceeded"]');
      await refused.waitFor({ timeout: 20_000 });
      expect(await refused.textContent()).toMatch(/today's usage limit/);
      await page.screenshot({ path: await screenshotPath('chat-page-budget') });
    } finally {
      await browser.close();
    }
  });
});
