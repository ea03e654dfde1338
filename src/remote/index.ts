// The OpenAI-compatible backend (docs/openai.md).
export { OpenAIClient, normalizeBaseUrl, type OpenAIClientOptions, type RequestCache, type CompletionRequest, type ChatCompletionRequest, type ChatMessage } from './openai.js';
export { OpenAIGenerator, apiIdentity, applyStop, type OpenAIGeneratorOptions, type ApiEndpoint, type ApiGeneratedText, type ApiMeta } from './generator.js';
export { JsonHttpClient, DEFAULT_HTTP_OPTIONS, type HttpOptions, type RetryEvent } from './http.js';
export { addOpenAIOptions, openAIGeneratorFromOptions, type OpenAICliOptions } from './options.js';
export { RemoteError } from './errors.js';
export { Semaphore } from './semaphore.js';
