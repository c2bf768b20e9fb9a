import { REDIS_KEYS, isDeltaPayload, type MessageListener, type PubSub } from '@relay/common';
import type { Logger } from 'pino';
import type { UserData } from './user-data.js';

/** What the registry needs of a socket; uWS' WebSocket<UserData> has it, tests can fake it. */
export interface DeliverySocket {
  getUserData(): UserData;
  send(message: string): number;
}

export interface UserSockets {
  /** Adds a socket; subscribes `user:{userid}` when it is the user's first one here. */
  add(socket: DeliverySocket): Promise<void>;
  /** Removes a socket; unsubscribes after the user's last one. */
  remove(socket: DeliverySocket): Promise<void>;
  count(userid: string): number;
  readonly users: number;
  readonly connections: number;
  /** Every socket, for shutdown. */
  all(): DeliverySocket[];
}

/**
 * Holds which sockets of which user this gateway has and keeps the Redis subscriptions in step: a
 * channel is subscribed while at least one socket of that user is open here. Frames arrive already
 * serialised by the relay and go out as they are, once per socket; deltas only to sockets that opted
 * in.
 */
export function createUserSockets(deps: {
  pubsub: PubSub;
  logger: Logger;
  onFrame?: (kind: 'delta' | 'frame', delivered: number) => void;
}): UserSockets {
  const byUser = new Map<string, { sockets: Set<DeliverySocket>; listener: MessageListener }>();
  let connections = 0;

  function listenerFor(userid: string): MessageListener {
    return (payload) => {
      const entry = byUser.get(userid);
      if (!entry) return;
      const isDelta = isDeltaPayload(payload);
      let delivered = 0;
      for (const socket of entry.sockets) {
        const data = socket.getUserData();
        if (data.closed || (isDelta && !data.stream)) continue;
        socket.send(payload);
        delivered++;
      }
      deps.onFrame?.(isDelta ? 'delta' : 'frame', delivered);
    };
  }

  return {
    async add(socket) {
      const { userid } = socket.getUserData();
      connections++;
      const existing = byUser.get(userid);
      if (existing) {
        existing.sockets.add(socket);
        return;
      }
      const entry = { sockets: new Set([socket]), listener: listenerFor(userid) };
      byUser.set(userid, entry);
      try {
        await deps.pubsub.subscribe(REDIS_KEYS.userChannel(userid), entry.listener);
      } catch (err) {
        // Delivery for this user is broken until Redis answers; the client will resume on reconnect.
        deps.logger.error({ err, userid }, 'subscribe failed');
        throw err;
      }
    },
    async remove(socket) {
      const { userid } = socket.getUserData();
      const entry = byUser.get(userid);
      if (!entry || !entry.sockets.delete(socket)) return;
      connections--;
      if (entry.sockets.size > 0) return;
      byUser.delete(userid);
      await deps.pubsub.unsubscribe(REDIS_KEYS.userChannel(userid), entry.listener);
    },
    count: (userid) => byUser.get(userid)?.sockets.size ?? 0,
    get users() {
      return byUser.size;
    },
    get connections() {
      return connections;
    },
    all: () => [...byUser.values()].flatMap((e) => [...e.sockets]),
  };
}
