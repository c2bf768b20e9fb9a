import {
  REDIS_KEYS,
  hasTraceContext,
  noopTracer,
  splitTraceContext,
  type MessageListener,
  type PubSub,
  type Tracer,
} from '@relay/common';
import type { Logger } from 'pino';
import type { Connection } from './connection/connection.js';
import { eventIdOf } from './event-id.js';
import type { SessionSocket } from './user-data.js';

export interface UserSockets<S extends SessionSocket> {
  /**
   * Adds a socket; subscribes `user:{userid}` when it is the user's first one here. Resolves once the
   * subscription is active on the server (also for a second socket that joins while the first one's
   * subscribe is still under way), so a resume can read the log knowing no live frame slips past.
   */
  add(socket: S): Promise<void>;
  /** Removes a socket; unsubscribes after the user's last one. */
  remove(socket: S): Promise<void>;
  count(userid: string): number;
  /** The connections of one user here (cancel checks look at all of them). */
  connectionsOf(userid: string): Connection[];
  readonly users: number;
  readonly connections: number;
  /** Every socket, for shutdown. */
  all(): S[];
}

/** What `subscribed` becomes once the subscription is active: one shared promise, not one per user. */
const SUBSCRIBED: Promise<void> = Promise.resolve();

/**
 * Holds which sockets of which user this gateway has and keeps the Redis subscriptions in step: a
 * channel is subscribed while at least one socket of that user is open here. Each frame from the
 * channel is handed to `deliver` once per socket of the user (the frame stays serialised); `deliver`
 * must not throw (the sessions guard it per socket, so one socket's bug never skips the others).
 */
export function createUserSockets<S extends SessionSocket>(deps: {
  pubsub: PubSub;
  logger: Logger;
  deliver: (socket: S, payload: string) => void;
  /** The user's first socket here was added (presence takes its lease). Must not throw. */
  onFirst?: (socket: S) => void;
  /** The user's last socket here is gone, or their first one's subscribe failed. Must not throw. */
  onLast?: (socket: S) => void;
  /** A `ws deliver` span for each frame the relay traced. @default noopTracer */
  tracer?: Tracer;
}): UserSockets<S> {
  const byUser = new Map<string, { sockets: Set<S>; listener: MessageListener; subscribed: Promise<void> }>();
  const tracer = deps.tracer ?? noopTracer;
  let connections = 0;

  function listenerFor(userid: string): MessageListener {
    return (payload) => {
      const entry = byUser.get(userid);
      if (!entry) return;
      // One comparison for an untraced frame; a traced one loses its trace lines here, whether or
      // not this gateway traces: sockets get the frame's bytes only (contract/channel-payload.ts).
      if (hasTraceContext(payload)) return deliverTraced(entry.sockets, payload);
      for (const socket of entry.sockets) deps.deliver(socket, payload);
    };
  }

  function deliverTraced(sockets: Set<S>, payload: string): void {
    const { frame, carrier } = splitTraceContext(payload);
    if (!tracer.enabled) {
      for (const socket of sockets) deps.deliver(socket, frame);
      return;
    }
    const span = tracer.startSpan('ws deliver', 'consumer', tracer.extract(carrier));
    span.setAttribute('relay.sockets', sockets.size);
    span.setAttribute('relay.event_id', eventIdOf(frame));
    try {
      tracer.withSpan(span, () => {
        for (const socket of sockets) deps.deliver(socket, frame);
      });
    } finally {
      span.end();
    }
  }

  return {
    async add(socket) {
      const { userid } = socket.getUserData().connection;
      connections++;
      const existing = byUser.get(userid);
      if (existing) {
        existing.sockets.add(socket);
        return existing.subscribed;
      }
      const listener = listenerFor(userid);
      const subscribed = deps.pubsub.subscribe(REDIS_KEYS.userChannel(userid), listener);
      const entry = { sockets: new Set([socket]), listener, subscribed };
      byUser.set(userid, entry);
      deps.onFirst?.(socket);
      try {
        await subscribed;
        entry.subscribed = SUBSCRIBED;
      } catch (err) {
        // Delivery for this user is broken until Redis answers; the client will resume on reconnect.
        deps.logger.error({ err, userid }, 'subscribe failed');
        // Forget the failed entry (its sockets are closed by the caller), so the user's next socket
        // subscribes again instead of inheriting this rejection until all of these have closed.
        if (byUser.get(userid) === entry) {
          byUser.delete(userid);
          connections -= entry.sockets.size;
          deps.onLast?.(socket);
          await deps.pubsub
            .unsubscribe(REDIS_KEYS.userChannel(userid), listener)
            .catch((unsubErr: unknown) => {
              deps.logger.warn({ err: unsubErr, userid }, 'unsubscribe after a failed subscribe failed');
            });
        }
        throw err;
      }
    },
    async remove(socket) {
      const { userid } = socket.getUserData().connection;
      const entry = byUser.get(userid);
      if (!entry || !entry.sockets.delete(socket)) return;
      connections--;
      if (entry.sockets.size > 0) return;
      byUser.delete(userid);
      deps.onLast?.(socket);
      await deps.pubsub.unsubscribe(REDIS_KEYS.userChannel(userid), entry.listener);
    },
    count: (userid) => byUser.get(userid)?.sockets.size ?? 0,
    connectionsOf: (userid) =>
      [...(byUser.get(userid)?.sockets ?? [])].map((s) => s.getUserData().connection),
    get users() {
      return byUser.size;
    },
    get connections() {
      return connections;
    },
    all: () => [...byUser.values()].flatMap((e) => [...e.sockets]),
  };
}
