export * from './once.js';
export * from './shutdown.js';
export * from './boot.js';
export * from './guard.js';
