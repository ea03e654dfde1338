// The UIT pipeline as a library (docs/pipeline.md, "Library"): the package exports this module as
// the `pipeline` namespace.
export {
  runPipeline,
  type PipelineOptions,
  type PipelineSummary,
  type PipelineCommand,
  type TransferStep,
  type DenoiseStep,
  type TaskReport,
} from './pipeline.js';
export { openPipeline, runPipelineCommand, summaryLine, PIPELINE_DEFAULTS, type PipelineCliOptions, type OpenedPipeline } from './pipeline-cli.js';
export { CandidateSource, contiguousRuns, type CandidateStats } from './candidates.js';
export { LocalRangeGenerator, isRangeGenerator, type RangeGenerator, type RangeRequest } from './local-generator.js';
export { readCandidatesFile, candidatesEntry, type CandidatesRecord, type TransferInfo, type LoadedCandidates } from './candidates-file.js';
export { prepareNiv2, withDefinitions, withPositiveExamples, definitionsToWrite, modelProvenance, type ScorerInfo, type SelectionInfo } from './model-output.js';
export { referenceName, groupCandidateFiles, readCandidateGroup, type CandidateGroup, type FileCandidate, type ReferenceName } from './reference-layout.js';
export { parseShard, shardOf, inShard, type Shard } from './shard.js';
export { loadSeeds, DEFAULT_SEEDS_PATH, type Seeds } from './seeds.js';
export { errorsPathFor, type TaskFailure } from './task-errors.js';
export { buildTransferPrompt, TRANSFER_STOP, type PromptStyle, type SeedPair } from './prompt.js';
