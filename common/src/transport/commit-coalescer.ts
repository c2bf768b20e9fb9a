/**
 * Sends offset commits per partition, at most one in flight per partition: while one is on the
 * wire, newer watermarks only replace the target, and one more commit follows with the latest.
 * `minIntervalMs` spaces a partition's commits further: under load one commit per round trip was
 * still hundreds of OffsetCommit requests a second (a visible share of the relay's and Kafka's
 * CPU). A longer interval only widens what a crash redelivers, which consumers dedupe anyway.
 */
import { setTimeout as sleep } from 'node:timers/promises';

export interface CommitCoalescerOptions {
  /** Commits `offset` (the next offset to read) for the slot. */
  commit: (slot: string, offset: bigint) => Promise<void>;
  /** A commit failed; the slot is retried on its next `request`. */
  onError: (error: unknown, slot: string, offset: bigint) => void;
  /** Least time between the starts of two commits of one slot. @default 0 */
  minIntervalMs?: number;
}

export interface CommitCoalescer {
  /** Asks for `offset` to be committed for `slot`; a no-op when it is already committed. */
  request(slot: string, offset: bigint): void;
  /** Forgets a slot: nothing more is sent for it (a commit already on the wire may still land). */
  drop(slot: string): void;
  /** Resolves once nothing is in flight, after the commits requested so far were attempted. */
  flush(): Promise<void>;
  /** Refuses further commits (after a drained close). */
  stop(): void;
  /** The last offset committed successfully for the slot since it was first requested. */
  committed(slot: string): bigint | undefined;
}

interface SlotCommits {
  wanted: bigint;
  committed: bigint | undefined;
  inFlight: Promise<void> | undefined;
  lastStartedAt: number;
}

export function createCommitCoalescer(options: CommitCoalescerOptions): CommitCoalescer {
  const slots = new Map<string, SlotCommits>();
  let stopped = false;

  const minIntervalMs = options.minIntervalMs ?? 0;

  async function drain(slot: string, state: SlotCommits): Promise<void> {
    while (!stopped && slots.get(slot) === state && state.wanted !== state.committed) {
      const wait = state.lastStartedAt + minIntervalMs - performance.now();
      if (wait > 0) {
        await sleep(wait);
        continue;
      }
      state.lastStartedAt = performance.now();
      const target = state.wanted;
      try {
        await options.commit(slot, target);
        state.committed = target;
      } catch (err) {
        options.onError(err, slot, target);
        return;
      }
    }
  }

  return {
    request(slot, offset) {
      if (stopped) return;
      let state = slots.get(slot);
      if (!state) {
        state = {
          wanted: offset,
          committed: undefined,
          inFlight: undefined,
          lastStartedAt: Number.NEGATIVE_INFINITY,
        };
        slots.set(slot, state);
      }
      state.wanted = offset;
      if (state.inFlight || state.wanted === state.committed) return;
      const s = state;
      s.inFlight = drain(slot, s).finally(() => (s.inFlight = undefined));
    },
    drop(slot) {
      slots.delete(slot);
    },
    async flush() {
      await Promise.all([...slots.values()].map((s) => s.inFlight));
    },
    stop() {
      stopped = true;
    },
    committed(slot) {
      return slots.get(slot)?.committed;
    },
  };
}
