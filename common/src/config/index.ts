export * from './parse.js';
export * from './fragments.js';
