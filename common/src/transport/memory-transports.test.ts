import { busContract, storeContract } from '../testing/index.js';
import { createMemoryBus } from './memory-bus.js';
import { createMemoryPubSubHub, createMemoryStore } from './memory-store.js';

busContract('in-process', {
  create: async (onFatal) => createMemoryBus({ onFatal }),
  timeoutMs: 2000,
});

// One store and one hub per suite, as one Redis server serves every connection.
const store = createMemoryStore();
const hub = createMemoryPubSubHub();
storeContract('in-process', {
  store: async () => ({ ...store, close: async () => {} }),
  pubsub: async () => hub.client(),
});
