import { REDIS_KEYS, createMemoryStore, serializeFrame, type KeyValueStore } from '@relay/common';
import { silentLogger } from '@relay/common/testing';
import { describe, expect, it } from 'vitest';
import { eventIdOf, streamIdMs } from '../event-id.js';
import { fakeSocket, type FakeSocket } from '../testing/fake-socket.js';
import { frames, payload } from '../testing/frames.js';
import { REPLAY_PAGE_SIZE, isGap, replayLog } from './replay.js';

const TTL = 3_600_000;
const resume = (store: KeyValueStore, s: FakeSocket, from: string, now?: () => number) =>
  replayLog({ store, replayTtlMs: TTL, ...(now ? { now } : {}) }, s.connection, from);

async function append(store: KeyValueStore, content: string, maxLength = 1000): Promise<string> {
  return store.streamAppend(
    REDIS_KEYS.replayLog('alice'),
    { frame: serializeFrame(frames.final(content, content)) },
    { maxLength, ttlMs: TTL },
  );
}

const contents = (f: Array<Record<string, unknown>>) => f.map((x) => x.content ?? x.type);

describe('eventIdOf', () => {
  it('reads the event_id attachEventId put last', () => {
    expect(eventIdOf(payload(frames.final('r', 'x'), '1700000000000-3'))).toBe('1700000000000-3');
    expect(eventIdOf(payload(frames.final('r', 'x')))).toBeUndefined();
    expect(eventIdOf('{"type":"ack","request_id":"m"}')).toBeUndefined();
    // A quote inside a string is escaped, so content cannot fake the key.
    expect(eventIdOf(payload(frames.final('r', 'x,"event_id":"1-1')))).toBeUndefined();
    expect(streamIdMs('1700000000000-3')).toBe(1_700_000_000_000);
  });
});

describe('isGap', () => {
  const now = 10_000_000;
  const info = (firstId: string, maxDeletedId = '0-0') => ({
    firstId,
    lastId: firstId,
    maxDeletedId,
    length: 1,
  });
  it('trimmed past the resume point', () => {
    expect(isGap(info('9-0', '8-0'), '5-0', TTL, now)).toBe(true);
    expect(isGap(info('9-0', '5-0'), '5-0', TTL, now)).toBe(false);
    expect(isGap(info('3-0', '2-0'), '5-0', TTL, now)).toBe(false);
  });
  it('a missing log is a gap only when the resume point is older than the retention', () => {
    expect(isGap(null, `${now - TTL - 1}-0`, TTL, now)).toBe(true);
    expect(isGap(null, `${now - 1000}-0`, TTL, now)).toBe(false);
  });
  it('a log that starts after the resume point without trimming it expired and was created again', () => {
    expect(isGap(info('9-0'), '5-0', TTL, now)).toBe(true);
  });
});

describe('replayLog', () => {
  it('replays what follows last_event_id in order, filtered for the socket, then goes live', async () => {
    const store = createMemoryStore();
    const seen = await append(store, 'seen');
    await store.streamAppend(
      REDIS_KEYS.replayLog('alice'),
      { frame: serializeFrame(frames.delta('r2', 0, 'd')) },
      { maxLength: 1000, ttlMs: TTL },
    );
    await append(store, 'missed-1');
    await append(store, 'missed-2');
    const s = fakeSocket({ stream: false, resumeFrom: seen });
    const result = await resume(store, s, seen);
    expect(result).toEqual({ replayed: 3, gap: false, clamped: false, abandoned: false });
    expect(contents(s.frames())).toEqual(['missed-1', 'missed-2']);
    expect(s.connection.state).toBe('live');
  });

  it('a frame published while the log is read arrives once, after the replay', async () => {
    const base = createMemoryStore();
    const seen = await append(base, 'seen');
    await append(base, 'missed');
    const s = fakeSocket({ resumeFrom: seen });
    let late: string | undefined;
    const store: KeyValueStore = {
      ...base,
      async streamRead(key, afterId, count) {
        const rows = await base.streamRead(key, afterId, count);
        // The relay appends and publishes during the read: the read missed it, the channel did not.
        if (!late) {
          late = await append(base, 'live');
          s.connection.live(payload(frames.final('live', 'live'), late));
        }
        return rows;
      },
    };
    await resume(store, s, seen);
    expect(contents(s.frames())).toEqual(['missed', 'live']);
  });

  it('drops live frames the replay already sent', async () => {
    const store = createMemoryStore();
    const seen = await append(store, 'seen');
    const s = fakeSocket({ resumeFrom: seen });
    const both = await append(store, 'both');
    s.connection.live(payload(frames.final('both', 'both'), both));
    await resume(store, s, seen);
    expect(contents(s.frames())).toEqual(['both']);
  });

  it('announces a gap before the frames after it', async () => {
    const store = createMemoryStore();
    const seen = await append(store, 'seen', 2);
    await append(store, 'lost', 2);
    await append(store, 'kept-1', 2);
    await append(store, 'kept-2', 2);
    const s = fakeSocket({ resumeFrom: seen });
    const result = await resume(store, s, seen);
    expect(result.gap).toBe(true);
    const sent = s.frames();
    expect(contents(sent)).toEqual(['resume.gap', 'kept-1', 'kept-2']);
    expect(sent[0]).toMatchObject({ last_event_id: seen, oldest_event_id: sent[1]?.event_id });
  });

  it('reads long logs in pages', async () => {
    const store = createMemoryStore();
    const seen = await append(store, 'seen');
    for (let i = 0; i < REPLAY_PAGE_SIZE * 2 + 5; i++) await append(store, `m${i}`);
    const s = fakeSocket({ resumeFrom: seen });
    const result = await resume(store, s, seen);
    expect(result.replayed).toBe(REPLAY_PAGE_SIZE * 2 + 5);
    expect(contents(s.frames())).toEqual(Array.from({ length: REPLAY_PAGE_SIZE * 2 + 5 }, (_, i) => `m${i}`));
  });

  it('reads the log again when the live frames kept aside overflowed during the replay', async () => {
    const base = createMemoryStore();
    const seen = await append(base, 'seen');
    const s = fakeSocket({
      resumeFrom: seen,
      policy: { softBytes: 100, hardBytes: 1000, logger: silentLogger },
    });
    let published = 0;
    const store: KeyValueStore = {
      ...base,
      async streamRead(key, afterId, count) {
        const rows = await base.streamRead(key, afterId, count);
        // A burst during the first read: more than the socket may keep aside.
        for (; published < 30; published++) {
          const id = await append(base, `burst-${published}`);
          s.connection.live(payload(frames.final(`burst-${published}`, `burst-${published}`), id));
        }
        return rows;
      },
    };
    await resume(store, s, seen);
    expect(contents(s.frames())).toEqual(Array.from({ length: 30 }, (_, i) => `burst-${i}`));
  });

  it('moves a resume point ahead of the log back to its end, so real frames are not dropped as seen', async () => {
    const store = createMemoryStore();
    const newest = await append(store, 'old');
    const s = fakeSocket({ resumeFrom: '99999999999999-0' });
    const result = await resume(store, s, '99999999999999-0');
    expect(result).toMatchObject({ clamped: true, abandoned: false });
    expect(s.frames()[0]).toMatchObject({ type: 'resume.gap', oldest_event_id: newest });
    const next = await append(store, 'new');
    s.connection.live(payload(frames.final('new', 'new'), next));
    expect(contents(s.frames())).toEqual(['resume.gap', 'new']);
  });

  it('with no log at all, a resume point in the future becomes no position', async () => {
    const store = createMemoryStore();
    const s = fakeSocket({ resumeFrom: '5000-0' });
    const result = await resume(store, s, '5000-0', () => 1000);
    expect(result).toMatchObject({ clamped: true, gap: false });
    expect(s.connection.snapshot()).toMatchObject({ state: 'live', position: null });
    s.connection.live(payload(frames.final('first', 'first'), '1-0'));
    expect(contents(s.frames())).toEqual(['resume.gap', 'first']);
  });

  it('stops when the socket closes during the replay', async () => {
    const base = createMemoryStore();
    const seen = await append(base, 'seen');
    await append(base, 'missed');
    const s = fakeSocket({ resumeFrom: seen });
    const store: KeyValueStore = {
      ...base,
      async streamRead(key, afterId, count) {
        s.end(1001, 'gone');
        return base.streamRead(key, afterId, count);
      },
    };
    const result = await resume(store, s, seen);
    expect(result.abandoned).toBe(true);
    expect(s.sent).toEqual([]);
  });
});
