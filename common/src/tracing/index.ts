export * from './tracer.js';
export * from './options.js';
export * from './start.js';
