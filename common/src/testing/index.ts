export * from './wait-for.js';
export * from './bus-contract.js';
export * from './store-contract.js';
export * from './recording-tracer.js';
