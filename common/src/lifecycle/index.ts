export * from './once.js';
export * from './shutdown.js';
