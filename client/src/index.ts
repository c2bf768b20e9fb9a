export * from './backoff.js';
export * from './resilient-client.js';
