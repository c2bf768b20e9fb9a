import {
  compareStreamIds,
  deltaFrameSchema,
  isDeltaPayload,
  isStreamOnlyPayload,
  resetFrameSchema,
  serializeFrame,
  type DeltaFrame,
} from '@relay/common';
import type { Logger } from 'pino';
import type { z } from 'zod';
import { eventIdOf } from './event-id.js';
import type { UserData } from './user-data.js';

/** What delivery needs of a socket: uWS' WebSocket<UserData> has it, unit tests fake it. */
export interface OutboundSocket {
  getUserData(): UserData;
  /** uWS: 0 = buffered (backpressure), 1 = written, 2 = dropped past `maxBackpressure`. */
  send(message: string): number;
  getBufferedAmount(): number;
  end(code?: number, shortMessage?: string): void;
}

/** Consecutive held deltas of one request: they go out as one `response.delta` frame. */
interface HeldRun {
  /** The first delta as it arrived, sent unchanged when nothing was merged into it. */
  first: string;
  frame: DeltaFrame;
  parts: string[];
  /** `event_id` of the last delta merged in: the client resumes after everything the frame holds. */
  lastEventId: string | undefined;
  bytes: number;
}

/**
 * Per-socket outbound state (lives in the socket's UserData). Bounded: live frames kept during a
 * resume and held deltas each stay under the hard limit, or are given up (see {@link Delivery}).
 */
export interface Outbox {
  /** `resuming`: live frames wait in `buffered` until the replay has caught up. */
  mode: 'live' | 'resuming';
  buffered: string[];
  bufferedBytes: number;
  /**
   * The buffer outgrew the hard limit and was emptied: the resume must read the log again before it
   * goes live (every frame received so far was appended to the log before it was published).
   */
  overflowed: boolean;
  held: HeldRun[];
  heldBytes: number;
  /**
   * The newest `event_id` handled for this socket (sent, held, or skipped by its filter): where a
   * resync after a lost channel reads the log from. Starts at the socket's last_event_id, or at the
   * stream id of the moment it opened.
   */
  lastEventId: string | null;
}

export function createOutbox(resumeFrom: string | null): Outbox {
  return {
    lastEventId: resumeFrom,
    mode: resumeFrom !== null ? 'resuming' : 'live',
    buffered: [],
    bufferedBytes: 0,
    overflowed: false,
    held: [],
    heldBytes: 0,
  };
}

export interface DeliveryOptions {
  /** Above this many bytes in a socket's send buffer, its deltas are held and coalesced. */
  softBytes: number;
  /** Send buffer + held deltas past this close the socket with 1008 `slow_consumer`. */
  hardBytes: number;
  logger: Logger;
  /** Frames written, by kind (a coalesced frame counts once). */
  onWritten?: (kind: 'delta' | 'frame') => void;
  /** A delta was merged into a held frame instead of going out on its own. */
  onCoalesced?: () => void;
  onSlowClose?: () => void;
}

/**
 * Writes frames to sockets in `event_id` order, whatever the socket's state:
 * - while it resumes, live frames are kept aside and sent after the replay (minus what the replay
 *   already sent);
 * - frames only streaming sockets get (deltas, resets) are skipped for the others;
 * - while its send buffer is above the soft limit, deltas are held and consecutive deltas of one
 *   request merged into one frame, sent when the socket drains. Every other frame is sent at once,
 *   after the held deltas (so order, and with it the client's last_event_id, stays right);
 * - past the hard limit the socket is closed with 1008 `slow_consumer` and the client resumes.
 *
 * A merged frame carries the `seq` of its first delta and the `event_id` of its last: `seq` then
 * jumps (the next frame's `seq` is one past the last merged delta), and the deltas a client receives
 * still add up to the final `content`.
 */
export interface Delivery {
  /** A frame from the user's channel. */
  live(socket: OutboundSocket, payload: string): void;
  /** A frame from the replay log (event_id attached), or a resume.gap: in order, like a live one. */
  replayed(socket: OutboundSocket, payload: string): void;
  /** A frame outside the log (ack, error about a client frame): sent at once, never held. */
  control(socket: OutboundSocket, payload: string): void;
  /** uWS' `drain`: held deltas go out once the send buffer is below the soft limit again. */
  drain(socket: OutboundSocket): void;
  /** The replay is done up to `lastId`: send the live frames kept aside that are newer, then go live. */
  goLive(socket: OutboundSocket, lastId: string): void;
}

export function createDelivery(options: DeliveryOptions): Delivery {
  const { softBytes, hardBytes, logger } = options;

  function slowClose(socket: OutboundSocket, why: string): void {
    const data = socket.getUserData();
    if (data.closed) return;
    logger.info(
      { userid: data.userid, connection: data.connectionId, buffered: socket.getBufferedAmount(), why },
      'closing slow client',
    );
    data.outbox.held = [];
    data.outbox.heldBytes = 0;
    options.onSlowClose?.();
    socket.end(1008, 'slow_consumer');
  }

  /** Sends one frame unless the socket is past the hard limit. False when the socket is gone. */
  function write(socket: OutboundSocket, payload: string, kind: 'delta' | 'frame'): boolean {
    if (socket.getUserData().closed) return false;
    // Checked before every send, and uWS' maxBackpressure is above the hard limit: uWS never drops.
    if (socket.getBufferedAmount() > hardBytes) {
      slowClose(socket, 'send buffer over the hard limit');
      return false;
    }
    if (socket.send(payload) === 2) {
      slowClose(socket, 'frame dropped by uWS');
      return false;
    }
    options.onWritten?.(kind);
    return true;
  }

  function runPayload(run: HeldRun): string {
    if (run.parts.length === 1) return run.first;
    return serializeFrame({ ...run.frame, delta: run.parts.join('') }, run.lastEventId);
  }

  function flushHeld(socket: OutboundSocket): boolean {
    const outbox = socket.getUserData().outbox;
    while (outbox.held.length > 0) {
      const run = outbox.held.shift() as HeldRun;
      outbox.heldBytes -= run.bytes;
      if (!write(socket, runPayload(run), 'delta')) return false;
    }
    return true;
  }

  function parse<T>(payload: string, schema: z.ZodType<T>): T | undefined {
    try {
      const result = schema.safeParse(JSON.parse(payload));
      return result.success ? result.data : undefined;
    } catch (err) {
      logger.warn({ err }, 'frame from the user channel is not JSON');
      return undefined;
    }
  }

  function hold(socket: OutboundSocket, payload: string): void {
    const outbox = socket.getUserData().outbox;
    const frame = parse(payload, deltaFrameSchema);
    if (!frame) {
      // Cannot be merged; still delivered, in order.
      if (flushHeld(socket)) write(socket, payload, 'delta');
      return;
    }
    const tail = outbox.held.at(-1);
    if (tail && tail.frame.request_id === frame.request_id) {
      tail.parts.push(frame.delta);
      tail.lastEventId = eventIdOf(payload) ?? tail.lastEventId;
      tail.bytes += payload.length;
      options.onCoalesced?.();
    } else {
      outbox.held.push({
        first: payload,
        frame,
        parts: [frame.delta],
        lastEventId: eventIdOf(payload),
        bytes: payload.length,
      });
    }
    outbox.heldBytes += payload.length;
    if (socket.getBufferedAmount() + outbox.heldBytes > hardBytes) {
      slowClose(socket, 'held deltas over the hard limit');
    }
  }

  /** Drops the held deltas of a request that restarts: the reset voids them anyway. */
  function dropHeldOf(socket: OutboundSocket, requestId: string): void {
    const outbox = socket.getUserData().outbox;
    const kept = outbox.held.filter((run) => run.frame.request_id !== requestId);
    for (const run of outbox.held) if (run.frame.request_id === requestId) outbox.heldBytes -= run.bytes;
    outbox.held = kept;
  }

  function emit(socket: OutboundSocket, payload: string): void {
    const data = socket.getUserData();
    if (data.closed) return;
    const eventId = eventIdOf(payload);
    const last = data.outbox.lastEventId;
    if (eventId !== undefined) {
      // A user's event_ids only grow, so one at or below the last sent is a copy: the relay
      // publishes its newest frame again after a crash between append and publish.
      if (last !== null && compareStreamIds(eventId, last) <= 0) return;
      data.outbox.lastEventId = eventId;
    }
    if (isStreamOnlyPayload(payload)) {
      if (!data.stream) return;
      if (isDeltaPayload(payload)) {
        if (socket.getBufferedAmount() > softBytes) hold(socket, payload);
        else if (flushHeld(socket)) write(socket, payload, 'delta');
        return;
      }
      const reset = parse(payload, resetFrameSchema);
      if (reset) dropHeldOf(socket, reset.request_id);
    }
    if (flushHeld(socket)) write(socket, payload, 'frame');
  }

  return {
    live(socket, payload) {
      const data = socket.getUserData();
      if (data.closed) return;
      const outbox = data.outbox;
      if (outbox.mode === 'live') return emit(socket, payload);
      if (outbox.overflowed) return;
      outbox.buffered.push(payload);
      outbox.bufferedBytes += payload.length;
      if (outbox.bufferedBytes > hardBytes) {
        outbox.buffered = [];
        outbox.bufferedBytes = 0;
        outbox.overflowed = true;
      }
    },
    replayed: emit,
    control(socket, payload) {
      write(socket, payload, 'frame');
    },
    drain(socket) {
      const data = socket.getUserData();
      if (data.closed || data.outbox.held.length === 0) return;
      if (socket.getBufferedAmount() <= softBytes) flushHeld(socket);
    },
    goLive(socket, lastId) {
      const outbox = socket.getUserData().outbox;
      const waiting = outbox.buffered;
      outbox.buffered = [];
      outbox.bufferedBytes = 0;
      outbox.overflowed = false;
      outbox.mode = 'live';
      for (const payload of waiting) {
        const id = eventIdOf(payload);
        // At or below the last replayed id: the replay already sent it.
        if (id !== undefined && compareStreamIds(id, lastId) <= 0) continue;
        emit(socket, payload);
      }
    },
  };
}
