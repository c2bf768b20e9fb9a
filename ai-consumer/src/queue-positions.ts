import type { BusMessage } from '@relay/common';

/** What a waiting message is about, as far as its queue position is concerned. */
export interface WaitingPrompt {
  userid: string;
  request_id: string;
  /** Whether its user reads deltas (the prompt event's `stream`): only those are told. */
  stream: boolean;
}

export interface QueuePositionUpdate extends WaitingPrompt {
  /** Messages ahead of it in the line (0: it is next). */
  position: number;
  /** The waiting message, for its headers (correlation id). */
  message: BusMessage;
}

export interface QueuePositionsOptions {
  /**
   * Shortest time between two rounds of updates. A request gets at most one update per round, and
   * only when its position changed since the one it got last.
   */
  intervalMs: number;
  /**
   * What a waiting message is about; undefined for one that is not a valid prompt (it still counts
   * as ahead of the ones behind it: it takes its turn). Called once per message while it waits.
   */
  describe: (message: BusMessage) => WaitingPrompt | undefined;
  /** Sends one round's updates. Must not throw; failures are its to count. */
  publish: (updates: QueuePositionUpdate[]) => void;
  /** @default Date.now */
  now?: () => number;
}

export interface QueuePositions {
  /** The bus's `onWaitingChange`: the line changed; a round follows within `intervalMs`. */
  changed(waiting: () => BusMessage[]): void;
  /** No round after this; forgets what was sent. Idempotent. */
  close(): void;
}

/**
 * Tells waiting streaming prompts their place in the line (docs/delivery.md, "Queue position").
 * The position is the index in the bus's waiting list, oldest first: every message taken before
 * this one and not yet started, whoever's it is, including the same user's earlier prompt waiting
 * for that user's running one.
 *
 * One timer for the whole consumer, never one per request, and only after the bus reported a
 * change: a prompt that finds a free worker costs nothing here. Changes within `intervalMs` of the
 * last round fold into the next one (the first after a quiet spell runs on the next macrotask, so
 * a fetched batch is one round). Only the list as it is at the round is read: a prompt that started
 * meanwhile is not in it, so no update goes out for a request whose deltas may already be flowing.
 */
export function createQueuePositions(options: QueuePositionsOptions): QueuePositions {
  const now = options.now ?? Date.now;
  let source: (() => BusMessage[]) | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let lastRound = Number.NEGATIVE_INFINITY;
  let closed = false;
  /** Messages waiting at the last round: what each is about and the position it was told. */
  let known = new Map<BusMessage, { prompt: WaitingPrompt | undefined; told: number | undefined }>();

  function round(): void {
    timer = undefined;
    if (closed || !source) return;
    lastRound = now();
    const next = new Map<BusMessage, { prompt: WaitingPrompt | undefined; told: number | undefined }>();
    const updates: QueuePositionUpdate[] = [];
    const waiting = source();
    for (let position = 0; position < waiting.length; position++) {
      const message = waiting[position] as BusMessage;
      const entry = known.get(message) ?? { prompt: options.describe(message), told: undefined };
      next.set(message, entry);
      const prompt = entry.prompt;
      if (!prompt?.stream || entry.told === position) continue;
      entry.told = position;
      updates.push({ ...prompt, position, message });
    }
    // Only what waits now is remembered: started and dropped messages are forgotten here.
    known = next;
    if (updates.length > 0) options.publish(updates);
  }

  return {
    changed(waiting) {
      source = waiting;
      if (closed || timer) return;
      timer = setTimeout(round, Math.max(0, lastRound + options.intervalMs - now()));
      // Never what keeps a process alive.
      timer.unref?.();
    },
    close() {
      closed = true;
      if (timer) clearTimeout(timer);
      timer = undefined;
      known = new Map();
    },
  };
}
