// The cache's public API (docs/cache.md, "API").
export {
  openCache,
  Cache,
  EXPORT_TABLES,
  EXPORT_COLUMNS,
  MERGE_TABLES,
  type OpenCacheOptions,
  type ModelRecord,
  type StoredModel,
  type GenerationRecord,
  type CachedGeneration,
  type GenerationGroup,
  type ScoreRecord,
  type CachedScore,
  type Counter,
  type CacheCounters,
  type CacheStats,
  type ModelCount,
  type RunStatus,
  type RunSummary,
  type MergeResult,
  type MergeTable,
  type ExportTable,
  type ExportRow,
} from './cache.js';
export {
  canonicalJson,
  generationKey,
  scoreKey,
  sha256Hex,
  KEY_VERSION,
  type GenerationInput,
  type ScoreInput,
  type JsonObject,
  type JsonValue,
} from './keys.js';
export { defaultCachePath } from './location.js';
export { APPLICATION_ID, SCHEMA_VERSION, MIGRATIONS, type Migration } from './schema.js';
export { formatExportRow, csvHeader, type ExportFormat } from './export.js';
export { salvageCache, SALVAGE_TABLES, type SalvageReport, type SalvageTable } from './salvage.js';
export { mergeCaches, type MergeAllOptions, type MergeAllResult } from './merge.js';
