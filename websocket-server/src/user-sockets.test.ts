import { createMemoryPubSubHub, type PubSub } from '@relay/common';
import { silentLogger } from '@relay/common/testing';
import { describe, expect, it } from 'vitest';
import { fakeSocket } from './testing/fake-socket.js';
import { createUserSockets } from './user-sockets.js';

describe('user sockets registry', () => {
  it('after a failed subscribe, the user’s next socket subscribes again instead of inheriting the failure', async () => {
    const inner = createMemoryPubSubHub().client();
    let failNext = true;
    let subscribes = 0;
    const pubsub: PubSub = {
      ...inner,
      async subscribe(channel, listener) {
        subscribes++;
        if (failNext) {
          failNext = false;
          throw new Error('redis down');
        }
        return inner.subscribe(channel, listener);
      },
    };
    const sockets = createUserSockets({ pubsub, logger: silentLogger, deliver: () => undefined });
    const first = fakeSocket();
    await expect(sockets.add(first)).rejects.toThrow('redis down');
    expect([sockets.users, sockets.connections]).toEqual([0, 0]);
    // The failed socket's close handler runs later: it must not unregister anything else.
    const second = fakeSocket();
    await sockets.add(second);
    await sockets.remove(first);
    expect([sockets.users, sockets.connections, subscribes]).toEqual([1, 1, 2]);
    expect(inner.channels()).toEqual(['user:alice']);
  });
});
