/**
 * Per-partition bookkeeping for committing with many messages in flight.
 *
 * A consumer may commit offset W for a partition only when every message below W has finished:
 * the group resumes from W after a crash, so a committed W above an unfinished message would lose
 * it. The watermark is therefore the offset of the lowest unfinished message, or one past the
 * highest tracked message when none is unfinished. A later message finishing first does not move
 * it; offsets missing from the log (compaction, transaction markers) are simply never tracked and
 * do not hold it back.
 */

/** Proof that a message was tracked; `finish` ignores tickets of a tracking that was dropped. */
export interface WatermarkTicket {
  readonly slot: string;
  readonly offset: bigint;
  readonly epoch: number;
}

interface SlotState {
  epoch: number;
  /** Tracked offsets in ascending order → finished? The first entry is never finished. */
  pending: Map<bigint, boolean>;
  /** One past the highest tracked offset. */
  next: bigint;
}

export interface OffsetWatermarks {
  /**
   * Tracks a message as in flight. Offsets of a slot must be tracked in ascending order; an offset
   * below the next expected one was already tracked (a refetch after a rebalance), so the call
   * returns undefined and the caller must not handle it again.
   */
  track(slot: string, offset: bigint): WatermarkTicket | undefined;
  /**
   * Marks a message finished. Returns the new watermark when it advanced, else undefined (an
   * earlier message is still unfinished, or the slot was dropped since the ticket was issued).
   */
  finish(ticket: WatermarkTicket): bigint | undefined;
  /** The offset it is safe to commit, or undefined when nothing is tracked for the slot. */
  watermark(slot: string): bigint | undefined;
  /** One past the highest tracked offset (where handling continues), or undefined. */
  nextOffset(slot: string): bigint | undefined;
  /** Messages tracked and not finished, below and above the watermark. */
  unfinished(slot: string): number;
  /** Forgets a slot (partition revoked): its outstanding tickets become void. */
  drop(slot: string): void;
  /** Slots currently tracked. */
  slots(): string[];
}

export function createOffsetWatermarks(): OffsetWatermarks {
  const states = new Map<string, SlotState>();
  let epochs = 0;

  function watermarkOf(state: SlotState): bigint {
    for (const offset of state.pending.keys()) return offset;
    return state.next;
  }

  return {
    track(slot, offset) {
      let state = states.get(slot);
      if (!state) {
        state = { epoch: ++epochs, pending: new Map(), next: offset };
        states.set(slot, state);
      }
      if (offset < state.next) return undefined;
      state.pending.set(offset, false);
      state.next = offset + 1n;
      return { slot, offset, epoch: state.epoch };
    },
    finish(ticket) {
      const state = states.get(ticket.slot);
      if (!state || state.epoch !== ticket.epoch || !state.pending.has(ticket.offset)) return undefined;
      const before = watermarkOf(state);
      state.pending.set(ticket.offset, true);
      // Map iteration follows insertion (= offset) order, so finished entries at the front are
      // exactly the ones the watermark has passed.
      for (const [offset, done] of state.pending) {
        if (!done) break;
        state.pending.delete(offset);
      }
      const after = watermarkOf(state);
      return after > before ? after : undefined;
    },
    watermark(slot) {
      const state = states.get(slot);
      return state ? watermarkOf(state) : undefined;
    },
    nextOffset(slot) {
      return states.get(slot)?.next;
    },
    unfinished(slot) {
      const state = states.get(slot);
      if (!state) return 0;
      let n = 0;
      for (const done of state.pending.values()) if (!done) n++;
      return n;
    },
    drop(slot) {
      states.delete(slot);
    },
    slots() {
      return [...states.keys()];
    },
  };
}
