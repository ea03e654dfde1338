// Library entry point: the same pieces the CLI uses.
export * from './types.js';
export * from './errors.js';
