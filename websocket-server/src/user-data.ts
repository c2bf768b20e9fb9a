import type { Outbox } from './socket-delivery.js';

/**
 * The `queue` of a socket with nothing in flight. Shared: an idle socket then holds no promise of
 * its own, which matters at tens of thousands of idle connections (bench: connections).
 */
export const IDLE_QUEUE: Promise<void> = Promise.resolve();

/** Typed per-socket state, set at upgrade time (nothing is bolted onto uWS socket objects). */
export interface UserData {
  userid: string;
  connectionId: number;
  /** Opted in to `response.delta` frames (`?stream=1` or a `hello` frame). */
  stream: boolean;
  /**
   * Opted in to new frame types such as `ack` (`?ack=1`, `?stream=1` or any `hello`). An original
   * client gets only `response` and `error` frames (SPEC §2: new frame types only when asked for).
   */
  extensions: boolean;
  ip: string;
  /** Set in `close`: a uWS socket must not be touched after it closed. */
  closed: boolean;
  /**
   * The socket's messages go to Kafka one after another, in the order they arrived: each waits for
   * the previous one's rate-limit check and broker ack, so a user's messages keep their order.
   */
  queue: Promise<void>;
  /** `?last_event_id=`: the replay log is read after this id once the socket is subscribed. */
  resumeFrom: string | null;
  /**
   * Where a resync starts for a socket that has handled no frame yet: a stream id made from the
   * gateway's clock at open. Kept apart from `outbox.lastEventId`, which only real frames set, so a
   * clock ahead of Redis' never makes the socket drop a frame as already seen.
   */
  resyncFrom: string | null;
  /**
   * The Redis subscription dropped while this socket was live: its live frames are buffered and a
   * resync replays the log from `resyncFrom` (its position at the drop) before they go out. Frames
   * that arrive after the resubscription can carry ids above frames missed during the outage, so
   * the position must be taken at the drop, not when the resync runs.
   */
  awaitingResync: boolean;
  /** What is waiting to go out on this socket: live frames during a resume, held deltas of a slow client. */
  outbox: Outbox;
}
