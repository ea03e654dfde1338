// `uit serve` as a library (docs/serve.md).
export {
  startServer,
  isLoopback,
  DEFAULT_MAX_BODY_BYTES,
  DEFAULT_CONNECTION_LIMITS,
  type ServeOptions,
  type RunningServer,
  type ServerStatus,
  type ConnectionLimits,
} from './server.js';
export { DEFAULT_LIMITS, COMPLETIONS_DEFAULT_MAX_TOKENS, parseCompletionRequest, parseChatRequest, type Limits, type GenerationPlan } from './protocol.js';
export { ChatFormatter, plainChatPrompt, type ChatMessage } from './chat.js';
export { Scheduler, sliceRequests, type SchedulerOptions, type BatchOptions, type SlicePart } from './scheduler.js';
export { ApiError, type ApiErrorBody } from './errors.js';
