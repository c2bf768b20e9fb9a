import {
  compareStreamIds,
  deltaFrameSchema,
  isDeltaPayload,
  isQueuedPayload,
  isStreamOnlyPayload,
  resetFrameSchema,
} from '@relay/common';
import type { Logger } from 'pino';
import { z } from 'zod';
import { eventIdOf } from '../event-id.js';
import { HeldDeltas } from './held-deltas.js';

/** Requests remembered per socket for cancel checks; past this the oldest is forgotten. */
const MAX_PENDING_PER_CONNECTION = 256;

const FINAL_PREFIX = '{"type":"response",';
const ERROR_PREFIX = '{"type":"error",';
const finalFrameSchema = z.looseObject({ request_id: z.string().optional() });

/** What a connection needs of its socket: uWS' WebSocket has it, the `ws` baseline and tests wrap theirs. */
export interface OutboundSocket {
  /**
   * uWS: 0 = buffered (backpressure), 1 = written, 2 = dropped past `maxBackpressure`. `compress`:
   * deflate it if the socket negotiated permessage-deflate (ignored otherwise).
   */
  send(message: string, isBinary?: boolean, compress?: boolean): number;
  getBufferedAmount(): number;
  end(code?: number, shortMessage?: string): void;
}

/** Limits and hooks shared by every connection of a gateway. */
export interface DeliveryPolicy {
  /** Above this many bytes in a socket's send buffer, its deltas are held and coalesced. */
  softBytes: number;
  /** Send buffer + held deltas (or frames waiting for a replay) past this: see {@link Connection}. */
  hardBytes: number;
  logger: Logger;
  /** Ask for permessage-deflate on every frame (`WS_COMPRESSION` is not `off`). */
  compress?: boolean;
  /** Frames written, by kind (a coalesced frame counts once). */
  onWritten?: (kind: 'delta' | 'frame') => void;
  /** A delta was merged into a held frame instead of going out on its own. */
  onCoalesced?: () => void;
  onSlowClose?: () => void;
}

/**
 * - `opening`: the upgrade was admitted, the socket is not open yet;
 * - `live`: frames go out as they arrive;
 * - `resuming`: the replay log is being read (a `last_event_id` resume, or a resync after the user
 *   channel came back); live frames wait and go out after it, minus what it already sent;
 * - `suspended`: the user channel dropped; the position is frozen and live frames wait for the resync;
 * - `closing`: the server ended the socket; `closed`: the transport reported it closed. Nothing is
 *   sent in either.
 */
export type ConnectionState = 'opening' | 'live' | 'resuming' | 'suspended' | 'closing' | 'closed';

export interface ConnectionInit {
  id: number;
  userid: string;
  /** The site the session token names. */
  site: string;
  ip: string;
  /** Opted in to `response.delta` frames (`?stream=1`, or later a `hello`). */
  stream: boolean;
  /** Opted in to new frame types such as `ack` (`?ack=1`, `?stream=1` or any `hello`). */
  extensions: boolean;
  /** `?last_event_id=`: the socket opens `resuming` from there. */
  resumeFrom: string | null;
}

/** What a state-transition test or a debug line sees of a connection. */
export interface ConnectionSnapshot {
  state: ConnectionState;
  position: string | null;
  waiting: number;
  waitingBytes: number;
  heldBytes: number;
  rereadNeeded: boolean;
}

/**
 * One socket's delivery state and the only code that changes it. Every transition is a named
 * method; frames reach the client only through it, in `event_id` order, whatever the state:
 * - frames at or below the newest `event_id` handled are copies (the relay republishes its newest
 *   frame after a crash) and dropped;
 * - frames only streaming sockets get (deltas, resets, queue positions) are skipped for the others;
 * - queue positions (`queued`, no `event_id`) go out only while live and below the soft limit;
 * - while the send buffer is above the soft limit, deltas are held and merged per request
 *   ({@link HeldDeltas}); every other frame goes out at once, after the held deltas;
 * - past the hard limit the socket is closed with 1008 `slow_consumer` and the client resumes;
 * - frames waiting for a replay past the hard limit are given up and the log read once more
 *   (every frame was appended to the log before it was published).
 */
export class Connection {
  readonly id: number;
  readonly userid: string;
  readonly site: string;
  readonly ip: string;
  private readonly policy: DeliveryPolicy;
  private readonly resumeFrom: string | null;
  private streaming: boolean;
  private extended: boolean;
  private current: ConnectionState = 'opening';
  private socket: OutboundSocket | null = null;
  /** The newest `event_id` handled (sent, held, or skipped by the filter). */
  private position: string | null;
  /** A stream id made from the clock at open: where a resync reads from before any frame was handled. */
  private openedAt: string | null = null;
  /** `suspended`: the position at the drop, where the resync's replay starts. */
  private frozenAt: string | null = null;
  /** `resuming`: the replay must read the log once more before it goes live. */
  private rereadNeeded = false;
  // Allocated on first use: most sockets never resume or fall behind, and idle sockets are many.
  private waiting: string[] | null = null;
  private waitingBytes = 0;
  private held: HeldDeltas | null = null;
  /** Requests acked on this socket whose final has not gone out: what a cancel may name. */
  private pending: Set<string> | null = null;

  constructor(init: ConnectionInit, policy: DeliveryPolicy) {
    this.id = init.id;
    this.userid = init.userid;
    this.site = init.site;
    this.ip = init.ip;
    this.streaming = init.stream;
    this.extended = init.extensions;
    this.resumeFrom = init.resumeFrom;
    this.position = init.resumeFrom;
    this.policy = policy;
  }

  get state(): ConnectionState {
    return this.current;
  }

  /** The socket can still be written to (also while a replay runs or the channel is down). */
  get open(): boolean {
    return this.current === 'live' || this.current === 'resuming' || this.current === 'suspended';
  }

  get stream(): boolean {
    return this.streaming;
  }

  get extensions(): boolean {
    return this.extended;
  }

  /** For log lines: never the token, never content. */
  get logContext(): { userid: string; connection: number; state: ConnectionState } {
    return { userid: this.userid, connection: this.id, state: this.current };
  }

  snapshot(): ConnectionSnapshot {
    return {
      state: this.current,
      position: this.position,
      waiting: this.waiting?.length ?? 0,
      waitingBytes: this.waitingBytes,
      heldBytes: this.held?.bytes ?? 0,
      rereadNeeded: this.rereadNeeded,
    };
  }

  // --- transitions -------------------------------------------------------------------------------

  /**
   * opening → live, or → resuming when the upgrade asked for `last_event_id`. Returns where the
   * replay starts (the caller runs it once the user channel is subscribed), or null.
   */
  opened(socket: OutboundSocket, nowMs: number): string | null {
    if (this.current !== 'opening') throw new Error(`connection ${this.id}: opened while ${this.current}`);
    this.socket = socket;
    // Redis stream ids start with the time they were added: frames after this point are this
    // socket's to get, should its channel need a resync before it handled any frame.
    this.openedAt = `${nowMs}-0`;
    this.current = this.resumeFrom !== null ? 'resuming' : 'live';
    return this.resumeFrom;
  }

  /** A `hello` frame: streaming on or off, new frame types on. */
  hello(stream: boolean): void {
    this.streaming = stream;
    this.extended = true;
  }

  /**
   * The replay found the resume point ahead of the log (a forged id, or a log Redis lost): the
   * position goes back to `id` (null: nothing in the log, every frame is new), so no real frame is
   * mistaken for one already seen.
   */
  rewindTo(id: string | null): void {
    if (this.current !== 'resuming') return;
    this.position = id;
  }

  /**
   * The replay read the log up to `lastId`. Returns false when it must read on from there (live
   * frames were given up meanwhile, or the channel was resubscribed); otherwise the frames that
   * waited and are newer than `lastId` go out and the connection is live.
   */
  caughtUp(lastId: string): boolean {
    if (this.current !== 'resuming') return true;
    if (this.rereadNeeded) {
      // Cleared before the next read: frames from now on are kept again, so none falls in between.
      this.rereadNeeded = false;
      return false;
    }
    const waiting = this.waiting;
    this.waiting = null;
    this.waitingBytes = 0;
    this.current = 'live';
    if (waiting) {
      for (const payload of waiting) {
        const id = eventIdOf(payload);
        // At or below the last replayed id: the replay already sent it.
        if (id !== undefined && compareStreamIds(id, lastId) <= 0) continue;
        this.emit(payload);
      }
    }
    return true;
  }

  /**
   * The user channel's subscription dropped. A live socket freezes its position (frames that arrive
   * after the resubscription can carry ids above frames missed during the outage, so the position is
   * taken now, not at the resync); a replay under way reads the log once more before going live.
   */
  channelLost(): void {
    if (this.current === 'live') {
      this.frozenAt = this.position ?? this.openedAt;
      this.current = 'suspended';
    } else if (this.current === 'resuming') {
      this.rereadNeeded = true;
    }
  }

  /**
   * The user channel was subscribed again: frames published meanwhile are only in the log. Returns
   * where a replay must start now (the connection is then `resuming`), or null when none is needed
   * (a replay under way reads once more instead; a closed socket needs nothing).
   */
  resync(): string | null {
    switch (this.current) {
      case 'suspended': {
        const from = this.frozenAt;
        this.frozenAt = null;
        this.current = 'resuming';
        return from;
      }
      case 'live': {
        const from = this.position ?? this.openedAt;
        if (from === null) return null;
        this.current = 'resuming';
        return from;
      }
      case 'resuming':
        this.rereadNeeded = true;
        return null;
      default:
        return null;
    }
  }

  /** A message of this socket was acked: a cancel for it is accepted until its final goes out. */
  accepted(requestId: string): void {
    const pending = (this.pending ??= new Set());
    if (pending.size >= MAX_PENDING_PER_CONNECTION) {
      // The oldest is most likely answered already (its final went out on another socket).
      const oldest = pending.values().next().value;
      if (oldest !== undefined) pending.delete(oldest);
    }
    pending.add(requestId);
  }

  hasPending(requestId: string): boolean {
    return this.pending?.has(requestId) ?? false;
  }

  /** The server ends the socket (drain 1001, slow client 1008, a bug 1011, …). Idempotent. */
  end(code: number, reason: string): void {
    if (!this.open) return;
    this.current = 'closing';
    this.release();
    // uWS calls the close handler (→ closed()) synchronously from end().
    this.socket?.end(code, reason);
  }

  /** The transport closed the socket. True the first time, so the caller unregisters it once. */
  closed(): boolean {
    if (this.current === 'closed') return false;
    this.current = 'closed';
    this.release();
    this.socket = null;
    return true;
  }

  // --- frames --------------------------------------------------------------------------------------

  /** A frame from the user's channel. */
  live(payload: string): void {
    if (this.current === 'live') return this.emit(payload);
    if (this.current !== 'resuming' && this.current !== 'suspended') return;
    // A queue position is not in the log: the replay cannot place it, and it is stale by the time
    // the socket is live again (the next one, or the deltas, follow).
    if (isQueuedPayload(payload)) return;
    // The log will be read once more, and this frame was appended to it before it was published.
    if (this.rereadNeeded) return;
    (this.waiting ??= []).push(payload);
    this.waitingBytes += payload.length;
    if (this.waitingBytes > this.policy.hardBytes) {
      this.waiting = null;
      this.waitingBytes = 0;
      this.rereadNeeded = true;
    }
  }

  /** A frame from the replay log (event_id attached), or a `resume.gap`: in order, like a live one. */
  replayed(payload: string): void {
    if (this.current === 'resuming') this.emit(payload);
  }

  /** A frame outside the log (ack, error about a client frame): sent at once, never held. */
  control(payload: string): void {
    if (this.open) this.write(payload, 'frame');
  }

  /** uWS' `drain`: held deltas go out once the send buffer is below the soft limit again. */
  drain(): void {
    if (!this.open || !this.held || this.held.empty || !this.socket) return;
    if (this.socket.getBufferedAmount() <= this.policy.softBytes) this.flushHeld();
  }

  // --- internals -----------------------------------------------------------------------------------

  private release(): void {
    this.waiting = null;
    this.waitingBytes = 0;
    this.held = null;
    this.pending = null;
  }

  private emit(payload: string): void {
    if (!this.open || !this.socket) return;
    const eventId = eventIdOf(payload);
    if (eventId !== undefined) {
      // A user's event_ids only grow, so one at or below the position is a copy.
      if (this.position !== null && compareStreamIds(eventId, this.position) <= 0) return;
      this.position = eventId;
    }
    if (this.pending !== null && this.pending.size > 0) this.settle(payload);
    if (isStreamOnlyPayload(payload)) {
      if (!this.streaming) return;
      if (isDeltaPayload(payload)) {
        if (this.socket.getBufferedAmount() > this.policy.softBytes) this.hold(payload);
        else if (this.flushHeld()) this.write(payload, 'delta');
        return;
      }
      // A hint about the present: a socket that is behind gets the deltas sooner without it.
      if (isQueuedPayload(payload) && this.socket.getBufferedAmount() > this.policy.softBytes) return;
      const reset = this.parse(payload, resetFrameSchema);
      if (reset) this.held?.dropRequest(reset.request_id);
    }
    if (this.flushHeld()) this.write(payload, 'frame');
  }

  private hold(payload: string): void {
    const frame = this.parse(payload, deltaFrameSchema);
    if (!frame) {
      // Cannot be merged; still delivered, in order.
      if (this.flushHeld()) this.write(payload, 'delta');
      return;
    }
    const held = (this.held ??= new HeldDeltas());
    if (held.hold(payload, frame)) this.policy.onCoalesced?.();
    const buffered = this.socket?.getBufferedAmount() ?? 0;
    if (buffered + held.bytes > this.policy.hardBytes) this.slowClose('held deltas over the hard limit');
  }

  /** Sends what is held, oldest first. False when the socket went away meanwhile. */
  private flushHeld(): boolean {
    const held = this.held;
    if (!held) return true;
    for (let payload = held.shift(); payload !== undefined; payload = held.shift()) {
      if (!this.write(payload, 'delta')) return false;
    }
    return true;
  }

  /** Sends one frame unless the socket is past the hard limit. False when the socket is gone. */
  private write(payload: string, kind: 'delta' | 'frame'): boolean {
    const socket = this.socket;
    if (!this.open || !socket) return false;
    // Checked before every send, and uWS' maxBackpressure is above the hard limit: uWS never drops.
    if (socket.getBufferedAmount() > this.policy.hardBytes) {
      this.slowClose('send buffer over the hard limit');
      return false;
    }
    if (socket.send(payload, false, this.policy.compress) === 2) {
      this.slowClose('frame dropped by uWS');
      return false;
    }
    this.policy.onWritten?.(kind);
    return true;
  }

  private slowClose(why: string): void {
    if (!this.open) return;
    this.policy.logger.info(
      { ...this.logContext, buffered: this.socket?.getBufferedAmount(), why },
      'closing slow client',
    );
    this.policy.onSlowClose?.();
    this.end(1008, 'slow_consumer');
  }

  /** A final (`response` or `error`) ends its request: it can no longer be cancelled. */
  private settle(payload: string): void {
    if (!payload.startsWith(FINAL_PREFIX) && !payload.startsWith(ERROR_PREFIX)) return;
    const frame = this.parse(payload, finalFrameSchema);
    if (frame?.request_id !== undefined) this.pending?.delete(frame.request_id);
  }

  private parse<T>(payload: string, schema: z.core.$ZodType<T>): T | undefined {
    try {
      // The core type and `z.safeParse`: the frame schemas are zod/mini ones (browsers parse them too).
      const result = z.safeParse(schema, JSON.parse(payload));
      return result.success ? result.data : undefined;
    } catch (err) {
      this.policy.logger.warn({ err, ...this.logContext }, 'frame from the user channel is not JSON');
      return undefined;
    }
  }
}
