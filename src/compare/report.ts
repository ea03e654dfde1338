// Builds the comparison of two uit outputs: per matched task the similarity of the two
// instructions, their lengths, and (with a scorer) which instruction better predicts the task's
// gold outputs. The report is plain data; the table, JSON and HTML writers only render it.
import type { Task } from '../types.js';
import { bleuStats, bleuFromStats, addBleuStats, exactMatch, rougeL, textLength, type BleuStats } from './metrics.js';

/**
 * Perplexity of candidate definitions of tasks (the UIT scoring prompt: mean cross-entropy of the
 * gold outputs given the definition, two positive examples and the input). For each task, one
 * number per definition, in order; null when the task has nothing to score (no non-empty outputs).
 */
export type DefinitionScorer = (tasks: Task[], definitionsPerTask: string[][]) => Promise<(number | null)[][]>;

export type Winner = 'offline' | 'api' | 'tie';

export interface SideStats {
  definition: string;
  words: number;
  chars: number;
  /** Present when a scorer ran; null when the task could not be scored. */
  perplexity?: number | null;
}

export interface TaskComparison {
  id: string;
  /** ROUGE-L F-measure between the two definitions, in [0, 1]. */
  rougeL: number;
  /** Sentence BLEU of the offline definition against the API one as reference, in [0, 1]. */
  bleu: number;
  /** Equal after whitespace normalization. */
  exact: boolean;
  offline: SideStats;
  api: SideStats;
  /** Lower perplexity wins; present when scored, null when either side has no perplexity. */
  winner?: Winner | null;
}

export interface Distribution {
  mean: number;
  median: number;
  min: number;
  max: number;
}

export interface CompareSummary {
  matched: number;
  onlyOffline: number;
  onlyApi: number;
  exact: number;
  exactRate: number;
  rougeL: Distribution | null;
  bleu: Distribution | null;
  /** BLEU over all matched pairs at once (summed n-gram statistics). */
  corpusBleu: number | null;
  words: { offlineMean: number; apiMean: number } | null;
  chars: { offlineMean: number; apiMean: number } | null;
  perplexity?: {
    scored: number;
    offlineMean: number | null;
    apiMean: number | null;
    /** Mean of offline minus API perplexity over tasks scored on both sides (negative: offline better). */
    meanDifference: number | null;
    wins: { offline: number; api: number; tie: number };
    /** Ids of matched tasks whose positive examples or instances differ between the sides (both were scored on the offline side's). */
    goldDiffers: string[];
  };
}

export interface CompareReport {
  offlinePath: string;
  apiPath: string;
  scored: boolean;
  tasks: TaskComparison[];
  onlyOffline: string[];
  onlyApi: string[];
  summary: CompareSummary;
}

/** Perplexities within this relative distance are a tie (float noise, not a win). */
const TIE_RELATIVE = 1e-9;

export function winnerOf(offline: number | null | undefined, api: number | null | undefined): Winner | null {
  if (offline == null || api == null || !Number.isFinite(offline) || !Number.isFinite(api)) return null;
  if (Math.abs(offline - api) <= TIE_RELATIVE * Math.max(Math.abs(offline), Math.abs(api))) return 'tie';
  return offline < api ? 'offline' : 'api';
}

export function distribution(values: readonly number[]): Distribution | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  return {
    mean: values.reduce((a, b) => a + b, 0) / values.length,
    median,
    min: sorted[0],
    max: sorted[sorted.length - 1],
  };
}

/** What the scorer reads of a task besides the definition: the examples' and instances' texts. */
function goldOf(t: Task): string {
  return JSON.stringify([t.positiveExamples.map((e) => [e.input, e.output]), t.instances.map((x) => [x.input, x.outputs])]);
}

function mean(values: readonly number[]): number | null {
  return values.length === 0 ? null : values.reduce((a, b) => a + b, 0) / values.length;
}

export interface CompareInput {
  offlinePath: string;
  apiPath: string;
  offline: Map<string, Task>;
  api: Map<string, Task>;
  scorer?: DefinitionScorer;
}

export async function compareOutputs(input: CompareInput): Promise<CompareReport> {
  const { offline, api } = input;
  const ids = [...offline.keys()].filter((id) => api.has(id)).sort();
  const onlyOffline = [...offline.keys()].filter((id) => !api.has(id)).sort();
  const onlyApi = [...api.keys()].filter((id) => !offline.has(id)).sort();

  const stats: BleuStats[] = [];
  const tasks: TaskComparison[] = ids.map((id) => {
    const a = offline.get(id)!.definition;
    const b = api.get(id)!.definition;
    const s = bleuStats(a, b);
    stats.push(s);
    return {
      id,
      rougeL: rougeL(b, a).fmeasure,
      bleu: bleuFromStats(s, true),
      exact: exactMatch(a, b),
      offline: { definition: a, ...textLength(a) },
      api: { definition: b, ...textLength(b) },
    };
  });

  if (input.scorer && tasks.length > 0) {
    // Both definitions are scored on the offline side's copy of the task (its examples and
    // instances): the gold data is the same task, only the instruction differs.
    const scored = await input.scorer(
      ids.map((id) => offline.get(id)!),
      tasks.map((t) => [t.offline.definition, t.api.definition]),
    );
    tasks.forEach((t, i) => {
      const [po, pa] = scored[i] ?? [];
      t.offline.perplexity = po ?? null;
      t.api.perplexity = pa ?? null;
      t.winner = winnerOf(po, pa);
    });
  }

  const summary: CompareSummary = {
    matched: tasks.length,
    onlyOffline: onlyOffline.length,
    onlyApi: onlyApi.length,
    exact: tasks.filter((t) => t.exact).length,
    exactRate: tasks.length === 0 ? 0 : tasks.filter((t) => t.exact).length / tasks.length,
    rougeL: distribution(tasks.map((t) => t.rougeL)),
    bleu: distribution(tasks.map((t) => t.bleu)),
    corpusBleu: stats.length === 0 ? null : bleuFromStats(stats.reduce((x, y) => addBleuStats(x, y)), false),
    words: tasks.length === 0 ? null : { offlineMean: mean(tasks.map((t) => t.offline.words))!, apiMean: mean(tasks.map((t) => t.api.words))! },
    chars: tasks.length === 0 ? null : { offlineMean: mean(tasks.map((t) => t.offline.chars))!, apiMean: mean(tasks.map((t) => t.api.chars))! },
  };
  if (input.scorer) {
    const both = tasks.filter((t) => t.winner != null);
    summary.perplexity = {
      scored: both.length,
      offlineMean: mean(both.map((t) => t.offline.perplexity!)),
      apiMean: mean(both.map((t) => t.api.perplexity!)),
      meanDifference: mean(both.map((t) => t.offline.perplexity! - t.api.perplexity!)),
      wins: {
        offline: both.filter((t) => t.winner === 'offline').length,
        api: both.filter((t) => t.winner === 'api').length,
        tie: both.filter((t) => t.winner === 'tie').length,
      },
      goldDiffers: ids.filter((id) => goldOf(offline.get(id)!) !== goldOf(api.get(id)!)),
    };
  }
  return { offlinePath: input.offlinePath, apiPath: input.apiPath, scored: input.scorer !== undefined, tasks, onlyOffline, onlyApi, summary };
}

/** The `--json` document: `{"tasks", "only_offline", "only_api", "summary"}`. */
export function reportToJson(report: CompareReport): {
  tasks: TaskComparison[];
  only_offline: string[];
  only_api: string[];
  summary: CompareSummary;
} {
  return {
    tasks: report.tasks,
    only_offline: report.onlyOffline,
    only_api: report.onlyApi,
    summary: report.summary,
  };
}
