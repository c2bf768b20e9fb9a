import { silentLogger } from '@relay/common/testing';
import { describe, expect, it } from 'vitest';
import { fakeSocket as makeSocket } from '../testing/fake-socket.js';
import { frames, payload } from '../testing/frames.js';
import type { DeliveryPolicy } from './connection.js';

const SOFT = 1000;
const HARD = 10_000;

function setup() {
  const counts = { coalesced: 0, slowCloses: 0, written: 0 };
  const policy: DeliveryPolicy = {
    softBytes: SOFT,
    hardBytes: HARD,
    logger: silentLogger,
    onWritten: () => counts.written++,
    onCoalesced: () => counts.coalesced++,
    onSlowClose: () => counts.slowCloses++,
  };
  const fakeSocket = (options: Parameters<typeof makeSocket>[0] = {}) => makeSocket({ policy, ...options });
  return { fakeSocket, counts };
}

const delta = (r: string, seq: number, text: string, id: string) => payload(frames.delta(r, seq, text), id);
const final = (r: string, content: string, id: string) => payload(frames.final(r, content), id);

describe('delivery through a connection', () => {
  it('sends live frames as they come; deltas and resets only to streaming sockets', () => {
    const { fakeSocket } = setup();
    const streaming = fakeSocket({ stream: true });
    const plain = fakeSocket({ stream: false });
    const items = [
      delta('r1', 0, 'He', '1-0'),
      payload(frames.reset('r1'), '1-1'),
      delta('r1', 0, 'Hi', '1-2'),
      final('r1', 'Hi', '1-3'),
    ];
    for (const p of items) {
      streaming.connection.live(p);
      plain.connection.live(p);
    }
    expect(streaming.sent).toEqual(items);
    expect(plain.sent).toEqual([items[3]]);
  });

  it('sends queue positions to streaming sockets only, live, without moving the resume position', () => {
    const { fakeSocket } = setup();
    const streaming = fakeSocket({ stream: true });
    const plain = fakeSocket({ stream: false });
    const items = [
      payload(frames.queued('r1', 1)),
      payload(frames.queued('r1', 0)),
      delta('r1', 0, 'Hi', '1-2'),
      final('r1', 'Hi', '1-3'),
    ];
    for (const p of items) {
      streaming.connection.live(p);
      plain.connection.live(p);
    }
    expect(streaming.sent).toEqual(items);
    expect(plain.sent).toEqual([items[3]]);
    // A hint has no event_id: the position is the newest log frame's.
    expect(streaming.connection.snapshot().position).toBe('1-3');
  });

  it('drops queue positions while resuming and while the send buffer is above the soft limit', () => {
    const { fakeSocket } = setup();
    const s = fakeSocket({ resumeFrom: '1-0' });
    s.connection.live(payload(frames.queued('r1', 3)));
    s.connection.live(delta('r1', 0, 'Hi', '1-2'));
    expect(s.connection.snapshot().waiting).toBe(1);
    expect(s.connection.caughtUp('1-1')).toBe(true);
    expect(s.frames().map((f) => f.type)).toEqual(['response.delta']);

    const slow = fakeSocket();
    slow.buffered = SOFT + 1;
    slow.connection.live(payload(frames.queued('r2', 0)));
    slow.connection.live(final('r2', 'ok', '2-0'));
    expect(slow.frames().map((f) => f.type)).toEqual(['response']);
  });

  it('holds deltas while the send buffer is above the soft limit and merges them per request', () => {
    const { fakeSocket, counts } = setup();
    const s = fakeSocket();
    s.connection.live(delta('r1', 0, 'a', '1-0'));
    s.buffered = SOFT + 1;
    s.connection.live(delta('r1', 1, 'b', '1-1'));
    s.connection.live(delta('r1', 2, 'c', '1-2'));
    s.connection.live(delta('r1', 3, 'd', '1-3'));
    expect(s.sent).toHaveLength(1);
    expect(counts.coalesced).toBe(2);

    // Still above the soft limit: drain keeps holding.
    s.connection.drain();
    expect(s.sent).toHaveLength(1);
    s.buffered = SOFT;
    s.connection.drain();
    expect(s.frames()).toEqual([
      expect.objectContaining({ seq: 0, delta: 'a', event_id: '1-0' }),
      // seq of the first merged delta, event_id of the last: seq then jumps to 4.
      { type: 'response.delta', request_id: 'r1', seq: 1, delta: 'bcd', userid: 'alice', event_id: '1-3' },
    ]);
    s.connection.live(delta('r1', 4, 'e', '1-4'));
    expect(s.frames().at(-1)).toMatchObject({ seq: 4, delta: 'e' });
  });

  it('sends a held run of one delta unchanged', () => {
    const { fakeSocket } = setup();
    const s = fakeSocket();
    s.buffered = SOFT + 1;
    const only = delta('r1', 0, 'a', '1-0');
    s.connection.live(only);
    expect(s.sent).toEqual([]);
    s.buffered = 0;
    s.connection.drain();
    expect(s.sent).toEqual([only]);
  });

  it('never holds a final: it goes out at once, after the held deltas, whatever the buffer', () => {
    const { fakeSocket } = setup();
    const s = fakeSocket();
    s.buffered = SOFT + 1;
    s.connection.live(delta('r1', 0, 'a', '1-0'));
    s.connection.live(delta('r1', 1, 'b', '1-1'));
    s.connection.live(final('r1', 'ab', '1-2'));
    const sent = s.frames();
    expect(sent.map((f) => f.type)).toEqual(['response.delta', 'response']);
    expect(sent[0]).toMatchObject({ delta: 'ab', event_id: '1-1' });
    expect(sent[1]).toMatchObject({ content: 'ab', event_id: '1-2' });
  });

  it('keeps event_id order across requests: a run only grows while it is the newest held one', () => {
    const { fakeSocket } = setup();
    const s = fakeSocket();
    s.buffered = SOFT + 1;
    s.connection.live(delta('a', 0, 'a0', '1-0'));
    s.connection.live(delta('a', 1, 'a1', '1-1'));
    s.connection.live(delta('b', 0, 'b0', '1-2'));
    s.connection.live(delta('a', 2, 'a2', '1-3'));
    s.connection.live(final('b', 'b0', '1-4'));
    const sent = s.frames();
    expect(sent.map((f) => f.event_id)).toEqual(['1-1', '1-2', '1-3', '1-4']);
    expect(sent.map((f) => f.delta ?? f.content)).toEqual(['a0a1', 'b0', 'a2', 'b0']);
  });

  it('a reset drops the held deltas of its request (void anyway) and keeps the others', () => {
    const { fakeSocket } = setup();
    const s = fakeSocket();
    s.buffered = SOFT + 1;
    s.connection.live(delta('a', 0, 'x', '1-0'));
    s.connection.live(delta('b', 0, 'keep', '1-1'));
    s.connection.live(delta('a', 1, 'y', '1-2'));
    s.connection.live(payload(frames.reset('a'), '1-3'));
    expect(s.frames().map((f) => [f.type, f.event_id])).toEqual([
      ['response.delta', '1-1'],
      ['response.reset', '1-3'],
    ]);
    expect(s.connection.snapshot().heldBytes).toBe(0);
  });

  it('closes with 1008 slow_consumer once held deltas and the send buffer pass the hard limit', () => {
    const { fakeSocket, counts } = setup();
    const s = fakeSocket();
    s.buffered = HARD - 500;
    for (let i = 0; i < 10 && !s.closedWith; i++)
      s.connection.live(delta('r1', i, 'x'.repeat(100), `1-${i}`));
    expect(s.closedWith).toEqual({ code: 1008, reason: 'slow_consumer' });
    expect(counts.slowCloses).toBe(1);
    expect(s.sent).toEqual([]);
    // Nothing is touched after the close.
    s.connection.live(final('r1', 'done', '2-0'));
    s.connection.drain();
    expect(counts.slowCloses).toBe(1);
  });

  it('closes instead of sending when the send buffer itself is past the hard limit', () => {
    const { fakeSocket } = setup();
    const s = fakeSocket();
    s.buffered = HARD + 1;
    s.connection.live(final('r1', 'x', '1-0'));
    expect(s.closedWith?.code).toBe(1008);
    expect(s.sent).toEqual([]);
  });

  it('treats a frame uWS dropped as a slow client (the client resumes it)', () => {
    const { fakeSocket } = setup();
    const s = fakeSocket();
    s.sendStatus = 2;
    s.connection.live(final('r1', 'x', '1-0'));
    expect(s.closedWith?.code).toBe(1008);
  });

  it('control frames go out at once: while resuming and past held deltas', () => {
    const { fakeSocket } = setup();
    const s = fakeSocket({ resumeFrom: '1-0' });
    s.connection.live(final('r1', 'x', '2-0'));
    const ack = '{"type":"ack","request_id":"m1","userid":"alice"}';
    s.connection.control(ack);
    expect(s.sent).toEqual([ack]);
  });

  it('while resuming keeps live frames aside; goLive sends those newer than the replay, in order', () => {
    const { fakeSocket } = setup();
    const s = fakeSocket({ resumeFrom: '1-0' });
    const live = [
      final('r1', 'old', '5-0'),
      final('r2', 'new', '5-1'),
      '{"type":"ping"}',
      final('r3', 'z', '6-0'),
    ];
    for (const p of live) s.connection.live(p);
    expect(s.sent).toEqual([]);
    s.connection.replayed(final('r0', 'replayed', '4-0'));
    s.connection.replayed(final('r1', 'old', '5-0'));
    s.connection.caughtUp('5-0');
    // 5-0 came both ways: once, from the replay.
    expect(s.sent).toEqual([final('r0', 'replayed', '4-0'), final('r1', 'old', '5-0'), ...live.slice(1)]);
    s.connection.live(final('r4', 'after', '7-0'));
    expect(s.sent.at(-1)).toBe(final('r4', 'after', '7-0'));
  });

  it('drops a frame whose event_id it already passed (the relay republishes its newest frame after a crash)', () => {
    const { fakeSocket } = setup();
    const s = fakeSocket({ stream: true });
    const first = final('r1', 'answer', '5-0');
    s.connection.live(delta('r1', 0, 'ans', '4-9'));
    s.connection.live(first);
    s.connection.live(first);
    s.connection.live(delta('r1', 0, 'ans', '4-9'));
    expect(s.sent).toEqual([delta('r1', 0, 'ans', '4-9'), first]);
  });

  it('remembers the newest event_id it handled, also for frames the socket’s filter skips', () => {
    const { fakeSocket } = setup();
    const s = fakeSocket({ stream: false });
    s.connection.live(delta('r1', 0, 'a', '3-0'));
    expect(s.connection.snapshot().position).toBe('3-0');
    s.connection.live(final('r0', 'late', '2-0'));
    expect(s.connection.snapshot().position).toBe('3-0');
    s.connection.control('{"type":"ack","request_id":"m","userid":"alice"}');
    expect(s.connection.snapshot().position).toBe('3-0');
  });

  it('gives up the resume buffer past the hard limit and flags it, so the log is read again', () => {
    const { fakeSocket } = setup();
    const s = fakeSocket({ resumeFrom: '1-0' });
    for (let i = 0; i < 200; i++) s.connection.live(final(`r${i}`, 'x'.repeat(100), `2-${i}`));
    const snapshot = s.connection.snapshot();
    expect(snapshot.rereadNeeded).toBe(true);
    expect(snapshot.waitingBytes).toBeLessThanOrEqual(HARD);
    expect(s.closedWith).toBeNull();
  });
});
