export * from './ops-server.js';
