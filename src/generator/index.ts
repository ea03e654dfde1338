// The generator contract (docs/runtime-api.md, "TextGenerator"): the interface every text source
// implements, its canonical parameters as cache JSON, and the cache in front of any generator.
export { paramsJson, type TextGenerator, type GenerationParams, type GenerationRequest, type GeneratedText, type FinishReason } from './generator.js';
export { CachedGenerator, cachedRequests, type CachedGeneratorOptions, type CachedRequest } from './cached-generator.js';
