import { silentLogger } from '@relay/common/testing';
import { describe, expect, it } from 'vitest';
import { createDelivery } from './socket-delivery.js';
import { fakeSocket } from './testing/fake-socket.js';
import { frames, payload } from './testing/frames.js';

const SOFT = 1000;
const HARD = 10_000;

function setup() {
  const counts = { coalesced: 0, slowCloses: 0, written: 0 };
  const delivery = createDelivery({
    softBytes: SOFT,
    hardBytes: HARD,
    logger: silentLogger,
    onWritten: () => counts.written++,
    onCoalesced: () => counts.coalesced++,
    onSlowClose: () => counts.slowCloses++,
  });
  return { delivery, counts };
}

const delta = (r: string, seq: number, text: string, id: string) => payload(frames.delta(r, seq, text), id);
const final = (r: string, content: string, id: string) => payload(frames.final(r, content), id);

describe('delivery to one socket', () => {
  it('sends live frames as they come; deltas and resets only to streaming sockets', () => {
    const { delivery } = setup();
    const streaming = fakeSocket({ stream: true });
    const plain = fakeSocket({ stream: false });
    const items = [
      delta('r1', 0, 'He', '1-0'),
      payload(frames.reset('r1'), '1-1'),
      delta('r1', 0, 'Hi', '1-2'),
      final('r1', 'Hi', '1-3'),
    ];
    for (const p of items) {
      delivery.live(streaming, p);
      delivery.live(plain, p);
    }
    expect(streaming.sent).toEqual(items);
    expect(plain.sent).toEqual([items[3]]);
  });

  it('holds deltas while the send buffer is above the soft limit and merges them per request', () => {
    const { delivery, counts } = setup();
    const s = fakeSocket();
    delivery.live(s, delta('r1', 0, 'a', '1-0'));
    s.buffered = SOFT + 1;
    delivery.live(s, delta('r1', 1, 'b', '1-1'));
    delivery.live(s, delta('r1', 2, 'c', '1-2'));
    delivery.live(s, delta('r1', 3, 'd', '1-3'));
    expect(s.sent).toHaveLength(1);
    expect(counts.coalesced).toBe(2);

    // Still above the soft limit: drain keeps holding.
    delivery.drain(s);
    expect(s.sent).toHaveLength(1);
    s.buffered = SOFT;
    delivery.drain(s);
    expect(s.frames()).toEqual([
      expect.objectContaining({ seq: 0, delta: 'a', event_id: '1-0' }),
      // seq of the first merged delta, event_id of the last: seq then jumps to 4.
      { type: 'response.delta', request_id: 'r1', seq: 1, delta: 'bcd', userid: 'alice', event_id: '1-3' },
    ]);
    delivery.live(s, delta('r1', 4, 'e', '1-4'));
    expect(s.frames().at(-1)).toMatchObject({ seq: 4, delta: 'e' });
  });

  it('sends a held run of one delta unchanged', () => {
    const { delivery } = setup();
    const s = fakeSocket();
    s.buffered = SOFT + 1;
    const only = delta('r1', 0, 'a', '1-0');
    delivery.live(s, only);
    expect(s.sent).toEqual([]);
    s.buffered = 0;
    delivery.drain(s);
    expect(s.sent).toEqual([only]);
  });

  it('never holds a final: it goes out at once, after the held deltas, whatever the buffer', () => {
    const { delivery } = setup();
    const s = fakeSocket();
    s.buffered = SOFT + 1;
    delivery.live(s, delta('r1', 0, 'a', '1-0'));
    delivery.live(s, delta('r1', 1, 'b', '1-1'));
    delivery.live(s, final('r1', 'ab', '1-2'));
    const sent = s.frames();
    expect(sent.map((f) => f.type)).toEqual(['response.delta', 'response']);
    expect(sent[0]).toMatchObject({ delta: 'ab', event_id: '1-1' });
    expect(sent[1]).toMatchObject({ content: 'ab', event_id: '1-2' });
  });

  it('keeps event_id order across requests: a run only grows while it is the newest held one', () => {
    const { delivery } = setup();
    const s = fakeSocket();
    s.buffered = SOFT + 1;
    delivery.live(s, delta('a', 0, 'a0', '1-0'));
    delivery.live(s, delta('a', 1, 'a1', '1-1'));
    delivery.live(s, delta('b', 0, 'b0', '1-2'));
    delivery.live(s, delta('a', 2, 'a2', '1-3'));
    delivery.live(s, final('b', 'b0', '1-4'));
    const sent = s.frames();
    expect(sent.map((f) => f.event_id)).toEqual(['1-1', '1-2', '1-3', '1-4']);
    expect(sent.map((f) => f.delta ?? f.content)).toEqual(['a0a1', 'b0', 'a2', 'b0']);
  });

  it('a reset drops the held deltas of its request (void anyway) and keeps the others', () => {
    const { delivery } = setup();
    const s = fakeSocket();
    s.buffered = SOFT + 1;
    delivery.live(s, delta('a', 0, 'x', '1-0'));
    delivery.live(s, delta('b', 0, 'keep', '1-1'));
    delivery.live(s, delta('a', 1, 'y', '1-2'));
    delivery.live(s, payload(frames.reset('a'), '1-3'));
    expect(s.frames().map((f) => [f.type, f.event_id])).toEqual([
      ['response.delta', '1-1'],
      ['response.reset', '1-3'],
    ]);
    expect(s.getUserData().outbox.heldBytes).toBe(0);
  });

  it('closes with 1008 slow_consumer once held deltas and the send buffer pass the hard limit', () => {
    const { delivery, counts } = setup();
    const s = fakeSocket();
    s.buffered = HARD - 500;
    for (let i = 0; i < 10 && !s.closedWith; i++) delivery.live(s, delta('r1', i, 'x'.repeat(100), `1-${i}`));
    expect(s.closedWith).toEqual({ code: 1008, reason: 'slow_consumer' });
    expect(counts.slowCloses).toBe(1);
    expect(s.sent).toEqual([]);
    // Nothing is touched after the close.
    delivery.live(s, final('r1', 'done', '2-0'));
    delivery.drain(s);
    expect(counts.slowCloses).toBe(1);
  });

  it('closes instead of sending when the send buffer itself is past the hard limit', () => {
    const { delivery } = setup();
    const s = fakeSocket();
    s.buffered = HARD + 1;
    delivery.live(s, final('r1', 'x', '1-0'));
    expect(s.closedWith?.code).toBe(1008);
    expect(s.sent).toEqual([]);
  });

  it('treats a frame uWS dropped as a slow client (the client resumes it)', () => {
    const { delivery } = setup();
    const s = fakeSocket();
    s.sendStatus = 2;
    delivery.live(s, final('r1', 'x', '1-0'));
    expect(s.closedWith?.code).toBe(1008);
  });

  it('control frames go out at once: while resuming and past held deltas', () => {
    const { delivery } = setup();
    const s = fakeSocket({ resumeFrom: '1-0' });
    delivery.live(s, final('r1', 'x', '2-0'));
    const ack = '{"type":"ack","request_id":"m1","userid":"alice"}';
    delivery.control(s, ack);
    expect(s.sent).toEqual([ack]);
  });

  it('while resuming keeps live frames aside; goLive sends those newer than the replay, in order', () => {
    const { delivery } = setup();
    const s = fakeSocket({ resumeFrom: '1-0' });
    const live = [
      final('r1', 'old', '5-0'),
      final('r2', 'new', '5-1'),
      '{"type":"ping"}',
      final('r3', 'z', '6-0'),
    ];
    for (const p of live) delivery.live(s, p);
    expect(s.sent).toEqual([]);
    delivery.replayed(s, final('r0', 'replayed', '4-0'));
    delivery.replayed(s, final('r1', 'old', '5-0'));
    delivery.goLive(s, '5-0');
    // 5-0 came both ways: once, from the replay.
    expect(s.sent).toEqual([final('r0', 'replayed', '4-0'), final('r1', 'old', '5-0'), ...live.slice(1)]);
    delivery.live(s, final('r4', 'after', '7-0'));
    expect(s.sent.at(-1)).toBe(final('r4', 'after', '7-0'));
  });

  it('drops a frame whose event_id it already passed (the relay republishes its newest frame after a crash)', () => {
    const { delivery } = setup();
    const s = fakeSocket({ stream: true });
    const first = final('r1', 'answer', '5-0');
    delivery.live(s, delta('r1', 0, 'ans', '4-9'));
    delivery.live(s, first);
    delivery.live(s, first);
    delivery.live(s, delta('r1', 0, 'ans', '4-9'));
    expect(s.sent).toEqual([delta('r1', 0, 'ans', '4-9'), first]);
  });

  it('remembers the newest event_id it handled, also for frames the socket’s filter skips', () => {
    const { delivery } = setup();
    const s = fakeSocket({ stream: false });
    delivery.live(s, delta('r1', 0, 'a', '3-0'));
    expect(s.getUserData().outbox.lastEventId).toBe('3-0');
    delivery.live(s, final('r0', 'late', '2-0'));
    expect(s.getUserData().outbox.lastEventId).toBe('3-0');
    delivery.control(s, '{"type":"ack","request_id":"m","userid":"alice"}');
    expect(s.getUserData().outbox.lastEventId).toBe('3-0');
  });

  it('gives up the resume buffer past the hard limit and flags it, so the log is read again', () => {
    const { delivery } = setup();
    const s = fakeSocket({ resumeFrom: '1-0' });
    for (let i = 0; i < 200; i++) delivery.live(s, final(`r${i}`, 'x'.repeat(100), `2-${i}`));
    const outbox = s.getUserData().outbox;
    expect(outbox.overflowed).toBe(true);
    expect(outbox.bufferedBytes).toBeLessThanOrEqual(HARD);
    expect(s.closedWith).toBeNull();
  });
});
