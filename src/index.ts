// Library entry point: the same pieces the CLI uses.
export * from './types.js';
export * from './errors.js';
export * as compare from './compare/index.js';
export * as generator from './generator/index.js';
export * as remote from './remote/index.js';
export * as serve from './serve/index.js';
export * as runtime from './runtime/index.js';
export * as cache from './cache/index.js';
export * as pipeline from './transfer/pipeline-api.js';
export * as formats from './formats/index.js';
export * as perplexity from './perplexity/index.js';
