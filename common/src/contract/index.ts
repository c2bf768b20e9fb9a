export * from './client-frames.js';
export * from './server-frames.js';
export * from './kafka-events.js';
export * from './frames.js';
export * from './redis-keys.js';
export * from './history.js';
export * from './channel-payload.js';
export * from './http-api.js';
