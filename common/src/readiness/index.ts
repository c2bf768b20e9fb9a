export * from './checks.js';
export * from './dependency-watch.js';
