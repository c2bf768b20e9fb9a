/**
 * The `tail` of a queue with nothing in flight. Shared: an idle socket then holds no promise of its
 * own, which matters at tens of thousands of idle connections (bench: connections).
 */
const IDLE: Promise<void> = Promise.resolve();

/**
 * A socket's client messages on their way to Kafka, one after another in the order they arrived
 * (each waits for the previous one's rate-limit check and broker ack, so a user's messages keep
 * their order), and bounded: a client that sends faster than the broker acks cannot queue without
 * limit in the gateway's memory.
 */
export class IntakeQueue {
  private tail: Promise<void> = IDLE;
  private queued = 0;
  private readonly max: number;

  constructor(max: number) {
    this.max = max;
  }

  /** Messages accepted into the queue and not finished yet. */
  get size(): number {
    return this.queued;
  }

  /** Settles once everything queued so far is done (drain waits for it). */
  get settled(): Promise<void> {
    return this.tail;
  }

  /**
   * Runs `task` after the ones before it. False, and nothing queued, when `max` are waiting already.
   * `task` must not reject (failures become error frames inside it); a rejection is passed to
   * `onError` so the queue goes on.
   */
  push(task: () => Promise<void>, onError: (err: unknown) => void): boolean {
    if (this.queued >= this.max) return false;
    this.queued++;
    const next = this.tail.then(task).catch(onError);
    const tail = next.finally(() => {
      this.queued--;
      // Back to the shared idle promise once nothing is in flight.
      if (this.tail === tail) this.tail = IDLE;
    });
    this.tail = tail;
    return true;
  }
}

/** What a frame costs against a socket's frame budget. */
export type FrameVerdict = 'ok' | 'limited' | 'abusive';

/**
 * Every client frame, whatever its type (valid or not, cancel and hello included), counts against
 * a fixed window per socket: past `max` frames a frame is answered `rate_limited` instead of being
 * handled; past twice that the client is not listening to the answers and the socket is closed.
 * In memory: a client's frames never cost a Redis round trip before they are judged.
 */
export class FrameRate {
  private windowStart = 0;
  private count = 0;
  private readonly max: number;
  private readonly windowMs: number;

  constructor(max: number, windowMs: number) {
    this.max = max;
    this.windowMs = windowMs;
  }

  take(nowMs: number): FrameVerdict {
    if (nowMs - this.windowStart >= this.windowMs) {
      this.windowStart = nowMs;
      this.count = 0;
    }
    this.count++;
    if (this.count <= this.max) return 'ok';
    return this.count <= this.max * 2 ? 'limited' : 'abusive';
  }

  /** Milliseconds until the current window ends. */
  resetMs(nowMs: number): number {
    return Math.max(0, this.windowStart + this.windowMs - nowMs);
  }
}
