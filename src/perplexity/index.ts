// The scoring half of UIT's denoising (docs/scoring.md, "API").
export { buildScoringPrefix, scoringTarget } from './scoring-prompt.js';
export { SCORING_MODES, DEFAULT_SCORING, type ScoringMode } from './defaults.js';
export {
  aggregate,
  referenceChunks,
  unscoredText,
  REFERENCE_CHUNK,
  REFERENCE_CHUNKS,
  REFERENCE_MIN_INSTANCES,
  type Aggregate,
  type UnscoredReason,
} from './aggregate.js';
export {
  Scorer,
  OVERFLOW_POLICIES,
  type OverflowPolicy,
  type ScorePair,
  type PairScore,
  type ScorerOptions,
  type ScorerStats,
  type BatchProgress,
} from './scorer.js';
export { planGroups, planBatches, compareIds, commonPrefixLength, type PrefixGroup, type PlanOptions } from './plan.js';
export { CountingBackend, type ModelCallCounts } from './counting-backend.js';
export { instanceRng, shuffled } from './shuffle.js';
export { rankAndSelect, type Selection, type Ranked } from './select.js';
export {
  uitSetup,
  uitPairs,
  scoreCandidates,
  toCandidate,
  DEFAULT_INSTANCES,
  EXAMPLES_IN_PROMPT,
  type UitOptions,
  type UitSetup,
  type Candidate,
  type CandidateInput,
  type CandidateScore,
  type TaskScores,
  type ScoreCandidatesOptions,
} from './uit.js';
export { definitionScorer, type DefinitionScoringHooks } from './definition-scorer.js';
export { fitUitSetup, cutText, waterLevel, CUT_MARKER, DEFINITION_RESERVE, type FitContext, type FitReport } from './fit-prompt.js';
