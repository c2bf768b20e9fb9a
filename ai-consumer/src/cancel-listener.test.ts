import { REDIS_KEYS, createMemoryPubSubHub, type CancelControl } from '@relay/common';
import { silentLogger, waitFor } from '@relay/common/testing';
import { describe, expect, it } from 'vitest';
import { createCancelListener } from './cancel-listener.js';

describe('cancel listener', () => {
  it('passes valid cancel messages on, ignores garbage, and stops after close', async () => {
    const hub = createMemoryPubSubHub();
    const consumerSide = hub.client();
    const gatewaySide = hub.client();
    const seen: CancelControl[] = [];
    const listener = createCancelListener({
      pubsub: consumerSide,
      logger: silentLogger,
      onCancel: (c) => seen.push(c),
    });
    await listener.start();
    expect(consumerSide.channels()).toEqual([REDIS_KEYS.cancelChannel]);

    const publish = (message: string) => gatewaySide.publish(REDIS_KEYS.cancelChannel, message);
    await publish('not json');
    await publish(JSON.stringify({ request_id: 'r0' }));
    await publish(JSON.stringify({ userid: 'u1', request_id: '' }));
    await publish(JSON.stringify({ userid: 'u1', request_id: 'r1', extra: true }));
    await waitFor(() => seen.length === 1);
    expect(seen[0]).toMatchObject({ userid: 'u1', request_id: 'r1' });

    await listener.close();
    await listener.close();
    expect(consumerSide.channels()).toEqual([]);
    expect(await publish(JSON.stringify({ userid: 'u1', request_id: 'r2' }))).toBe(0);
  });
});
