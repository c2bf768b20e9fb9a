import { serializeFrame, type DeltaFrame } from '@relay/common';
import { eventIdOf } from '../event-id.js';

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
 * The deltas a slow client's socket holds back while its send buffer is above the soft limit.
 * Consecutive deltas of one request merge into one run (one frame when it drains); a run only grows
 * while it is the newest one, so `event_id` order across requests is kept.
 *
 * A merged frame carries the `seq` of its first delta and the `event_id` of its last: `seq` then
 * jumps (the next frame's `seq` is one past the last merged delta), and the deltas a client receives
 * still add up to the final `content`.
 */
export class HeldDeltas {
  private runs: HeldRun[] = [];
  private heldBytes = 0;

  get bytes(): number {
    return this.heldBytes;
  }

  get empty(): boolean {
    return this.runs.length === 0;
  }

  /** Holds a parsed delta; true when it was merged into the newest run (coalesced). */
  hold(payload: string, frame: DeltaFrame): boolean {
    const tail = this.runs.at(-1);
    this.heldBytes += payload.length;
    if (tail && tail.frame.request_id === frame.request_id) {
      tail.parts.push(frame.delta);
      tail.lastEventId = eventIdOf(payload) ?? tail.lastEventId;
      tail.bytes += payload.length;
      return true;
    }
    this.runs.push({
      first: payload,
      frame,
      parts: [frame.delta],
      lastEventId: eventIdOf(payload),
      bytes: payload.length,
    });
    return false;
  }

  /** Drops the held deltas of a request that restarts: its reset voids them anyway. */
  dropRequest(requestId: string): void {
    const kept: HeldRun[] = [];
    for (const run of this.runs) {
      if (run.frame.request_id === requestId) this.heldBytes -= run.bytes;
      else kept.push(run);
    }
    this.runs = kept;
  }

  /** The oldest run as one payload, removed from what is held; undefined when nothing is held. */
  shift(): string | undefined {
    const run = this.runs.shift();
    if (!run) return undefined;
    this.heldBytes -= run.bytes;
    if (run.parts.length === 1) return run.first;
    return serializeFrame({ ...run.frame, delta: run.parts.join('') }, run.lastEventId);
  }

  clear(): void {
    this.runs = [];
    this.heldBytes = 0;
  }
}
