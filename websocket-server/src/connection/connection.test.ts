import { describe, expect, it } from 'vitest';
import { fakeSocket } from '../testing/fake-socket.js';
import { frames, payload } from '../testing/frames.js';

const final = (r: string, id: string) => payload(frames.final(r, r), id);
const contents = (s: ReturnType<typeof fakeSocket>) => s.frames().map((f) => f.content ?? f.type);

describe('connection state transitions', () => {
  it('opening → live, or → resuming from last_event_id; opening twice is a bug', () => {
    const plain = fakeSocket({ open: false });
    expect(plain.connection.state).toBe('opening');
    expect(plain.connection.opened(plain, 5_000)).toBeNull();
    expect(plain.connection.state).toBe('live');
    expect(() => plain.connection.opened(plain, 5_000)).toThrow(/opened while live/);

    const resuming = fakeSocket({ open: false, resumeFrom: '3-0' });
    expect(resuming.connection.opened(resuming, 5_000)).toBe('3-0');
    expect(resuming.connection.snapshot()).toMatchObject({ state: 'resuming', position: '3-0' });
  });

  it('sends nothing before it opened', () => {
    const s = fakeSocket({ open: false });
    s.connection.live(final('r', '1-0'));
    s.connection.control('{"type":"ack","request_id":"m","userid":"alice"}');
    expect(s.sent).toEqual([]);
  });

  it('live → suspended freezes the position; resync replays from it; caught up → live', () => {
    const s = fakeSocket({ nowMs: 1_000 });
    s.connection.live(final('a', '5-0'));
    s.connection.channelLost();
    expect(s.connection.snapshot()).toMatchObject({ state: 'suspended', position: '5-0' });
    // A frame that arrives after the resubscription carries an id above frames missed meanwhile.
    s.connection.live(final('after', '9-0'));
    expect(s.sent).toHaveLength(1);
    expect(s.connection.resync()).toBe('5-0');
    expect(s.connection.state).toBe('resuming');
    s.connection.replayed(final('missed', '7-0'));
    expect(s.connection.caughtUp('7-0')).toBe(true);
    expect(s.connection.state).toBe('live');
    expect(contents(s)).toEqual(['a', 'missed', 'after']);
  });

  it('a socket that handled no frame resyncs from the moment it opened', () => {
    const s = fakeSocket({ nowMs: 4_242 });
    s.connection.channelLost();
    expect(s.connection.resync()).toBe('4242-0');
  });

  it('a resync of a live socket replays from its position', () => {
    const s = fakeSocket();
    s.connection.live(final('a', '6-1'));
    expect(s.connection.resync()).toBe('6-1');
    expect(s.connection.state).toBe('resuming');
  });

  it('a drop or a resync during a replay makes it read the log once more, not start a second one', () => {
    const s = fakeSocket({ resumeFrom: '1-0' });
    s.connection.channelLost();
    expect(s.connection.snapshot()).toMatchObject({ state: 'resuming', rereadNeeded: true });
    expect(s.connection.resync()).toBeNull();
    expect(s.connection.caughtUp('2-0')).toBe(false);
    expect(s.connection.snapshot().rereadNeeded).toBe(false);
    expect(s.connection.caughtUp('3-0')).toBe(true);
    expect(s.connection.state).toBe('live');
  });

  it('rewindTo moves the position back only while resuming', () => {
    const s = fakeSocket({ resumeFrom: '99-0' });
    s.connection.rewindTo('10-0');
    expect(s.connection.snapshot().position).toBe('10-0');
    s.connection.caughtUp('10-0');
    s.connection.rewindTo('1-0');
    expect(s.connection.snapshot().position).toBe('10-0');
    // Without the rewind a forged future id would silence every real frame.
    s.connection.live(final('real', '11-0'));
    expect(contents(s)).toEqual(['real']);
  });

  it('end → closing → closed: idempotent, and nothing moves afterwards', () => {
    const s = fakeSocket();
    s.connection.end(1001, 'server_shutdown');
    expect(s.closedWith).toEqual({ code: 1001, reason: 'server_shutdown' });
    expect(s.connection.state).toBe('closed');
    s.connection.end(1011, 'again');
    expect(s.connection.closed()).toBe(false);
    s.connection.live(final('late', '1-0'));
    s.connection.control('{"type":"ack","request_id":"m","userid":"alice"}');
    s.connection.channelLost();
    expect(s.connection.resync()).toBeNull();
    expect(s.connection.caughtUp('1-0')).toBe(true);
    expect(s.connection.state).toBe('closed');
    expect(s.sent).toEqual([]);
  });

  it('closed() reports the first close only, so the socket is unregistered once', () => {
    const s = fakeSocket();
    expect(s.connection.closed()).toBe(true);
    expect(s.connection.closed()).toBe(false);
  });

  it('remembers acked requests until their final goes out (what a cancel may name)', () => {
    const s = fakeSocket();
    s.connection.accepted('m1');
    s.connection.accepted('m2');
    expect(s.connection.hasPending('m1')).toBe(true);
    s.connection.live(payload(frames.delta('m1', 0, 'x'), '1-0'));
    expect(s.connection.hasPending('m1')).toBe(true);
    s.connection.live(final('m1', '1-1'));
    expect(s.connection.hasPending('m1')).toBe(false);
    expect(s.connection.hasPending('m2')).toBe(true);
    s.connection.live(
      payload({ type: 'error', code: 'timeout', message: 'late', userid: 'alice', request_id: 'm2' }, '1-2'),
    );
    expect(s.connection.hasPending('m2')).toBe(false);
  });

  it('keeps a bounded set of pending requests (the oldest forgotten first)', () => {
    const s = fakeSocket();
    for (let i = 0; i < 300; i++) s.connection.accepted(`m${i}`);
    expect(s.connection.hasPending('m0')).toBe(false);
    expect(s.connection.hasPending('m299')).toBe(true);
    expect(s.connection.hasPending('m44')).toBe(true);
  });
});
