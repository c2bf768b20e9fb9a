import { createMemoryStore } from '@relay/common';
import { describe, expect, it } from 'vitest';
import { buildMessages, createHistory, historyKey } from './history.js';

describe('conversation history', () => {
  it('keeps turns in order per user and conversation', async () => {
    const store = createMemoryStore();
    const history = createHistory({ store, maxMessages: 20, ttlSeconds: 60 });
    await history.append('u1', 'c1', [
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: 'hello' },
    ]);
    const kept = await history.append('u1', 'c1', [
      { role: 'user', content: 'how are you?' },
      { role: 'assistant', content: 'fine' },
    ]);
    expect(kept).toBe(4);
    await history.append('u1', 'c2', [{ role: 'user', content: 'other' }]);
    await history.append('u2', 'c1', [{ role: 'user', content: 'someone else' }]);
    expect(await history.load('u1', 'c1')).toEqual([
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: 'hello' },
      { role: 'user', content: 'how are you?' },
      { role: 'assistant', content: 'fine' },
    ]);
    expect(await history.load('u1', 'c2')).toEqual([{ role: 'user', content: 'other' }]);
    expect(await history.load('u3', 'c1')).toEqual([]);
    expect(await store.listRange('history:u1:c1', 0, -1)).toHaveLength(4);
  });

  it('caps at maxMessages (newest kept) and never starts with an orphan answer', async () => {
    const store = createMemoryStore();
    const history = createHistory({ store, maxMessages: 5, ttlSeconds: 60 });
    for (let i = 0; i < 4; i++) {
      await history.append('u', 'c', [
        { role: 'user', content: `q${i}` },
        { role: 'assistant', content: `a${i}` },
      ]);
    }
    expect(await store.listRange(historyKey('u', 'c'), 0, -1)).toHaveLength(5);
    expect((await history.load('u', 'c')).map((t) => t.content)).toEqual(['q2', 'a2', 'q3', 'a3']);
  });

  it('expires after the TTL since the last turn', async () => {
    let clock = 0;
    const store = createMemoryStore({ now: () => clock });
    const history = createHistory({ store, maxMessages: 10, ttlSeconds: 60 });
    await history.append('u', 'c', [{ role: 'user', content: 'q' }]);
    clock += 59_000;
    await history.append('u', 'c', [{ role: 'assistant', content: 'a' }]);
    clock += 59_000;
    expect(await history.load('u', 'c')).toHaveLength(2);
    clock += 1_000;
    expect(await history.load('u', 'c')).toEqual([]);
  });

  it('skips entries that do not parse', async () => {
    const store = createMemoryStore();
    await store.listAppend(
      historyKey('u', 'c'),
      [
        'not json',
        JSON.stringify({ role: 'tool', content: 'x' }),
        JSON.stringify({ role: 'user', content: 'ok' }),
      ],
      { maxLength: 10 },
    );
    const history = createHistory({ store, maxMessages: 10, ttlSeconds: 60 });
    expect(await history.load('u', 'c')).toEqual([{ role: 'user', content: 'ok' }]);
  });

  it('maxMessages 0 disables it', async () => {
    const store = createMemoryStore();
    const history = createHistory({ store, maxMessages: 0, ttlSeconds: 60 });
    await history.append('u', 'c', [{ role: 'user', content: 'q' }]);
    expect(await store.listRange(historyKey('u', 'c'), 0, -1)).toEqual([]);
    expect(await history.load('u', 'c')).toEqual([]);
  });

  it('keys cannot collide across users even when ids contain ":"', () => {
    expect(historyKey('alice', 'default')).toBe('history:alice:default');
    expect(historyKey('a:b', 'c')).not.toBe(historyKey('a', 'b:c'));
  });

  it('builds [system, ...history, prompt]', () => {
    const turns = [
      { role: 'user' as const, content: 'q' },
      { role: 'assistant' as const, content: 'a' },
    ];
    expect(buildMessages('be brief', turns, 'next')).toEqual([
      { role: 'system', content: 'be brief' },
      ...turns,
      { role: 'user', content: 'next' },
    ]);
    expect(buildMessages('', [], 'next')).toEqual([{ role: 'user', content: 'next' }]);
  });
});
