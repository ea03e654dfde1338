// The comparison API (docs/compare.md): read two outputs, compare, render.
export { readCompareSide, type CompareSide } from './read.js';
export {
  compareOutputs,
  reportToJson,
  winnerOf,
  type CompareInput,
  type CompareReport,
  type CompareSummary,
  type DefinitionScorer,
  type TaskComparison,
  type SideStats,
  type Winner,
} from './report.js';
export { rougeL, rougeTokens, sentenceBleu, corpusBleu, bleuStats, tokenize13a, exactMatch, normalizeWhitespace, textLength } from './metrics.js';
export { renderTable } from './table.js';
export { renderHtml, escapeHtml, histogramFor } from './html.js';
