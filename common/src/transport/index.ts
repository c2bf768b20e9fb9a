export * from './bus.js';
export * from './memory-bus.js';
export * from './kafka-bus.js';
export * from './store.js';
export * from './memory-store.js';
export * from './redis-store.js';
export * from './publish-retry.js';
// The @platformatic/kafka adapter is not re-exported: kafka-client.ts imports it only when chosen.
export * from './kafka-client.js';
export * from './consumer-lag.js';
