// What distillation reads from a teacher, whatever the source (a converted output's provenance, or
// the generations and scores in a cache): per source task, its source instruction and the
// teacher's candidate definitions with their denoising scores. Everything a reader cannot use is
// counted as a drop with its reason, so the report says what went where.

export interface TeacherCandidate {
  definition: string;
  /** Token-weighted mean cross-entropy of the gold outputs under the scorer; null: not scored. */
  meanCe: number | null;
}

export interface TeacherTask {
  /** The source task's id, as uit's readers name it (e.g. "p3/ag_news_classify"). */
  task: string;
  source: { file: string; format: string };
  /** The instruction the teacher rewrote (what `uit transfer` puts after "Instruction:"). */
  sourceInstruction: string;
  teacher: { model: string; name: string };
  /** Identity of the model that scored the candidates, null when none did. */
  scorer: string | null;
  candidates: TeacherCandidate[];
  /** The denoiser's pick (an index into candidates), when the source records it. */
  chosen: number | null;
  /** Where it was read, for the pairs' provenance: "FILE:LINE" or "cache FILE". */
  from: string;
}

export const DROP_REASONS = {
  'teacher-filtered': "the teacher's denoising filtered the task out (--threshold in its run): no output",
  'not-a-transfer': 'the provenance line is not a model or API transfer (no candidates)',
  'no-source-instruction': 'the task has no source instruction',
  'no-teacher-generations': 'the cache holds no generation of the teacher for this source instruction',
  'empty': 'the candidate is empty',
  'not-picked': 'not the denoiser\'s pick (--pick best)',
  'unscored': 'the candidate has no score (needed by --pick best without a recorded pick, --threshold, --top-k)',
  'above-threshold': 'perplexity above --threshold',
  'beyond-top-k': 'not among the --top-k lowest perplexities of its task',
  'duplicate': 'the same prompt and target as an earlier pair',
  'too-long': 'prompt + target + EOS longer than --max-tokens',
} as const;
export type DropReason = keyof typeof DROP_REASONS;

/** Counts of dropped tasks or candidates by reason, with the first few examples of each. */
export class Drops {
  static readonly EXAMPLES = 5;
  readonly byReason = new Map<DropReason, { count: number; examples: string[] }>();

  add(reason: DropReason, example: string, count = 1): void {
    let d = this.byReason.get(reason);
    if (!d) this.byReason.set(reason, (d = { count: 0, examples: [] }));
    d.count += count;
    if (d.examples.length < Drops.EXAMPLES) d.examples.push(example);
  }

  total(): number {
    let n = 0;
    for (const d of this.byReason.values()) n += d.count;
    return n;
  }

  toJson(): Record<string, { count: number; why: string; examples: string[] }> {
    const out: Record<string, { count: number; why: string; examples: string[] }> = {};
    for (const reason of Object.keys(DROP_REASONS) as DropReason[]) {
      const d = this.byReason.get(reason);
      if (d) out[reason] = { count: d.count, why: DROP_REASONS[reason], examples: d.examples };
    }
    return out;
  }
}
