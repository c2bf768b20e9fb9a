export * from './errors.js';
export * from './config/index.js';
export * from './logging/index.js';
export * from './metrics/index.js';
export * from './contract/index.js';
export * from './lifecycle/index.js';
export * from './transport/index.js';
export * from './http/index.js';
