// The runtime's public API (docs/runtime-api.md).
export { loadModel, describeDevice, Model, type LoadModelOptions, type ModelInfo } from './model.js';
export { inspectModelFolder, type ModelFolder, type ModelConfig } from './model-folder.js';
export { modelIdentity, identityFiles, userCacheDir, type IdentityOptions } from './identity.js';
export {
  createSession,
  providerReport,
  parseDevice,
  ortVersion,
  DEVICES,
  type Device,
  type ResolvedDevice,
  type GraphOptimizationLevel,
  type ProviderReport,
} from './session.js';
export { CUDA_PROVIDER_LIBS, describeCudaLibs, findCudaLibs, type CudaLib } from './cuda-libs.js';
export { readGraphSpec, type GraphSpec, type GraphKind, type KvDtype } from './graph-spec.js';
export { OrtBackend, gatherLogprobs, logSoftmaxAt, type Backend, type ForwardInput, type ForwardOutput, type ForwardWant, type KvData } from './backend.js';
export { KvCache, KvSlots, MIN_GROWTH, allocKv, growthStep, reservedSlots, type KvArray, type KvShape, type KvStore } from './kv-cache.js';
export { DeviceKvCache, liveDeviceTensors } from './device-kv.js';
export { probeWebGpu, describeAdapter, findVulkanDrivers, webgpuProblems, isSoftwareAdapter, ensureRuntimeDir, WEBGPU_DOCS, type WebGpuAdapter, type WebGpuReport, type VulkanDriver } from './webgpu.js';
export { step, prefill, scoreContinuations, type Prefix, type StepResult, type ScoreOptions } from './forward.js';
export {
  generate,
  type GenerateRequest,
  type GenerateOptions,
  type GenerateResult,
  type GeneratedSample,
  type GenerationOutput,
  type GenerationTimings,
  type FinishReason,
} from './generation/generate.js';
export {
  buildProcessors,
  buildProbsWarpers,
  repetitionPenalty,
  temperature,
  topK,
  topP,
  topKProbs,
  topPProbs,
  softmax,
  isGreedy,
  MIN_SAMPLING_TEMPERATURE,
  type SamplingParams,
  type LogitsProcessor,
  type ProbsWarper,
} from './generation/processors.js';
export { argmax, drawFromProbs, sampleMultinomial, sampleFromProbs } from './generation/sampler.js';
export { sampleRng, Rng } from './generation/prng.js';
export { StopMatcher } from './generation/stop.js';
export { halfToFloat32, float32ToHalf } from './half.js';
export { LocalGenerator, type LocalGeneratorOptions } from './text-generator.js';
export { UitTokenizer, loadTokenizer, IncrementalDecoder, type EncodeOptions, type DecodeOptions } from '../tokenizer/index.js';
