export { UitTokenizer, loadTokenizer, type EncodeOptions, type DecodeOptions } from './tokenizer.js';
export { IncrementalDecoder } from './incremental.js';
