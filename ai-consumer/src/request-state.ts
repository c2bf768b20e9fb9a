import { REDIS_KEYS, REQUEST_STATES, type KeyValueStore } from '@relay/common';

/**
 * What a delivery of a prompt should do:
 * - `fresh`: first time here, generate;
 * - `rerun`: an earlier delivery started and never finished (its consumer died mid-generation):
 *   void what it streamed with a `reset` event, then generate again from `seq` 0;
 * - `done`: the request was answered (final or error event published): publish and call nothing.
 */
export type Claim = 'fresh' | 'rerun' | 'done';

export interface RequestStateOptions {
  store: KeyValueStore;
  /** How long a state is remembered (`DEDUPE_TTL_SECONDS`): redeliveries later than this answer again. */
  ttlMs: number;
}

export interface RequestState {
  /** Marks the request `running` unless it has a state already; says what this delivery should do. */
  claim(userid: string, requestId: string): Promise<Claim>;
  /** Marks the request answered. Call it only after its final or error event is acknowledged. */
  markDone(userid: string, requestId: string): Promise<void>;
}

/**
 * Generation state across consumer crashes, so a redelivered prompt never calls the model again
 * once its answer is out. One Redis string per request; `SET NX` is the atomic claim.
 */
export function createRequestState(options: RequestStateOptions): RequestState {
  const { store, ttlMs } = options;
  return {
    async claim(userid, requestId) {
      const key = REDIS_KEYS.request(userid, requestId);
      if (await store.set(key, REQUEST_STATES.running, { onlyIfAbsent: true, ttlMs })) return 'fresh';
      const state = await store.get(key);
      if (state === REQUEST_STATES.done) return 'done';
      if (state === null) {
        // Expired or deleted between the two commands: nobody else holds it (one user's requests run
        // one at a time), so take it. A reset costs nothing if nothing was streamed before.
        await store.set(key, REQUEST_STATES.running, { ttlMs });
        return 'rerun';
      }
      // `running`, or a value some other version wrote: rather answer twice than never.
      return 'rerun';
    },
    async markDone(userid, requestId) {
      await store.set(REDIS_KEYS.request(userid, requestId), REQUEST_STATES.done, { ttlMs });
    },
  };
}
