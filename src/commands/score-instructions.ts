// `uit score-instructions`: UIT perplexity scores of candidate definitions for Ni-v2 tasks, with
// ranks and the pick. Candidates come from a candidates JSONL (the file `uit transfer` writes), from
// the files themselves in the UIT reference's layout (one file per candidate), or from each task's
// own Definition list.
import type { Command } from 'commander';
import { InputError } from '../errors.js';
// The readers, the scorer and the runtime load when the command runs.
import type { Candidate, TaskScores, UnscoredReason } from '../perplexity/index.js';
import type { FileCandidate } from '../transfer/reference-layout.js';
import type { Task } from '../types.js';
import { int, positive } from '../cli-values.js';
import { Output, addScorerOptions, summaryLine, type ScorerCliOptions } from './score.js';
import { addUitScoringOptions, openUitScoring, type UitScoringCliOptions } from './uit-scoring.js';

interface ScoreInstructionsOptions extends ScorerCliOptions, UitScoringCliOptions {
  candidates?: string;
  threshold?: number;
  topK?: number;
}

interface Input {
  task: Task;
  /** Candidates the input carries (files in the UIT reference's layout). */
  carried?: FileCandidate[];
}

/** Every task of the given Ni-v2 files and folders, in order; the reference's candidate files as one task each. */
async function readTasks(paths: readonly string[]): Promise<Input[]> {
  const [{ readTasks: readInputs }, { materialize }] = await Promise.all([import('../transfer/inputs.js'), import('../formats/api.js')]);
  const tasks: Input[] = [];
  const seen = new Map<string, string>();
  for await (const item of readInputs(paths, 'niv2', {})) {
    if (item.kind === 'error') throw item.error;
    const t = await materialize(item.task);
    const first = seen.get(t.id);
    if (first !== undefined) throw new InputError({ file: t.source.file }, `task ${t.id} is also in ${first}`);
    seen.set(t.id, t.source.file);
    tasks.push({ task: t, ...(item.candidates ? { carried: item.candidates } : {}) });
  }
  if (tasks.length === 0) throw new InputError({ file: paths.join(', ') }, 'no Ni-v2 tasks found');
  return tasks;
}

/** A Ni-v2 task's Definition list: Definition[0] is task.definition, the rest sit in source.extra. */
export function definitionList(task: Task): string[] {
  const rest = task.source.extra.Definition;
  return [task.definition, ...(Array.isArray(rest) ? rest.filter((d): d is string => typeof d === 'string') : [])];
}

function taskJson(t: Task, s: TaskScores, files: (string | undefined)[]): Record<string, unknown> {
  return {
    task: t.id,
    file: t.source.file,
    scoring: s.scoring,
    instances: s.setup.instances.map((x) => x.id),
    examples: s.setup.examples.length,
    examples_from_instances: s.setup.examplesFromInstances,
    examples_shortened: s.shortenedExamples,
    candidates: s.candidates.map((c) => ({
      index: c.index,
      ...(files[c.index] !== undefined ? { file: files[c.index] } : {}),
      definition: c.definition,
      own_examples: c.ownExamples,
      mean_ce: c.meanCe,
      perplexity: c.perplexity,
      ...(c.unscored !== null ? { unscored: c.unscored } : {}),
      ...(c.chunkMeanCe !== null ? { chunk_mean_ce: c.chunkMeanCe } : {}),
      tokens: c.tokens,
      instances_scored: c.instances,
      instances_empty: c.emptyInstances,
      instances_shortened: c.shortenedInstances,
      fitted_alone: c.fittedAlone,
      instances_truncated: c.truncatedInstances,
      rank: c.rank,
      kept: c.kept,
    })),
    pick: s.best,
  };
}

function oneLine(text: string, width: number): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length <= width ? flat : `${flat.slice(0, width - 1)}…`;
}

function taskTable(t: Task, s: TaskScores, unscoredText: (r: UnscoredReason, n: number) => string): string {
  const from = s.setup.examplesFromInstances.length ? ` (${s.setup.examplesFromInstances.length} borrowed from instances)` : '';
  const n = (k: number, what: string) => `${k} ${what}${k === 1 ? '' : 's'}`;
  const own = s.candidates.filter((c) => c.ownExamples).length;
  const examples = own === s.candidates.length ? 'examples of their own' : `${n(s.setup.examples.length, 'example')}${from}${own ? ` (${own} with their own)` : ''}`;
  const mode = s.scoring === 'uit' ? '' : `, ${s.scoring} scoring`;
  let out = `${t.id}: ${n(s.candidates.length, 'candidate')}, ${n(s.setup.instances.length, 'instance')}, ${examples}${mode}\n`;
  for (const reason of new Set(s.candidates.flatMap((c) => (c.unscored === null ? [] : [c.unscored])))) {
    const k = s.candidates.filter((c) => c.unscored === reason).length;
    out += `  ${n(k, 'candidate')} unscored: ${unscoredText(reason, s.setup.instances.length)}\n`;
  }
  const shortened = Math.max(0, ...s.candidates.map((c) => c.shortenedInstances));
  if (shortened > 0) out += `  ${n(shortened, 'prompt')} with inputs shortened to fit the context (Definitions whole)\n`;
  const truncated = Math.max(0, ...s.candidates.map((c) => c.truncatedInstances));
  if (truncated > 0) out += `  ${n(truncated, 'prompt')} still too long: cut on the left, the Definition first\n`;
  out += '  rank\tmean_ce\tperplexity\ttokens\tpick\tdefinition\n';
  const order = [...s.candidates].sort((a, b) => (a.rank ?? Infinity) - (b.rank ?? Infinity) || a.index - b.index);
  for (const c of order) {
    const ce = c.meanCe === null ? 'null' : c.meanCe.toFixed(4);
    const ppl = c.perplexity === null ? 'null' : c.perplexity.toFixed(3);
    const mark = c.index === s.best ? '*' : c.kept ? '+' : '';
    out += `  ${c.rank ?? '-'}\t${ce}\t${ppl}\t${c.tokens}\t${mark}\t[${c.index}] ${oneLine(c.definition, 100)}\n`;
  }
  return out;
}

export function register(program: Command): void {
  const cmd = program
    .command('score-instructions')
    .summary('rank candidate definitions of Ni-v2 tasks by perplexity')
    .description('Rank candidate definitions of Ni-v2 tasks by the perplexity of their gold outputs under the UIT scoring prompt (UIT denoising).')
    .argument('<tasks...>', 'Ni-v2 task files (.json), JSONL of tasks, or folders of them');
  addUitScoringOptions(addScorerOptions(cmd))
    .option('--candidates <file>', 'candidates JSONL: {"task": id, "candidates": [text, ...]} per line (what `uit transfer` writes)')
    .option('--threshold <ppl>', 'keep only candidates with perplexity at most this', positive('--threshold'))
    .option('--top-k <k>', 'keep the k best candidates (default 1 without --threshold)', int('--top-k', 1))
    .addHelpText(
      'after',
      `
For each candidate definition D, every scored instance (x, y) becomes the prompt
  "Definition: D\\n\\nPositive Examples 1\\nInput: ...\\nOutput: ...\\n\\nPositive Examples 2\\n...
   Now complete the following example -\\nInput: x\\nOutput: "
and the score is the cross-entropy of y (the instance's first output) given it. A candidate's
mean CE is token-weighted over up to M instances from a seeded shuffle; perplexity = exp(mean CE).
Without --candidates, each task's own Definition list is the candidate list; files in the UIT
reference's layout (<k>of<N>sample_<task>.json, one per candidate with its own Definition and
Positive Examples) are one task whose candidates are the files. Prompts longer than the model's
context get their long inputs shortened in the middle ("beginning ... end"), never the
Definition (docs/scoring.md); only a prompt that cannot fit so meets --overflow.
--scoring reference scores exactly as the UIT reference does: D as Python's repr(['D']), "null"
for an empty output, the mean of the CEs of instances [0:8], [8:16], [16:24], [24:], no input
shortening; it gives no score with fewer than 25 instances or a prompt over the context.

Plain output: per task, its candidates by rank ("*" the pick, "+" also kept); --json: one
object per task: {"task", "file", "scoring", "instances", "examples", "examples_from_instances",
"examples_shortened", "candidates": [{"index", "file"?, "definition", "own_examples", "mean_ce",
"perplexity", "unscored"?, "chunk_mean_ce"?, "tokens", "instances_scored", "instances_empty",
"instances_shortened", "fitted_alone", "instances_truncated", "rank", "kept"}], "pick"}.

Examples:
  $ uit score-instructions -m models/uit-tiny ../data/niv2/tasks/task1147_country_currency.json
  $ uit score-instructions -m models/uit-tiny tasks/ --candidates candidates.jsonl --top-k 3 --json
  $ uit score-instructions -m models/uit-tiny tasks/ --candidates candidates.jsonl --threshold 20 --instances 16 --seed 1
  $ uit score-instructions -m gptj-6b ppl_annotation/tasks/ --scoring reference --json`,
    )
    .action(async (paths: string[], opts: ScoreInstructionsOptions) => {
      const inputs = await readTasks(paths);
      const tasks = inputs.map((x) => x.task);
      const candidatesOf = new Map<string, Array<Candidate & { file?: string }>>();
      const [{ readCandidatesFile, candidatesEntry, unusedEntries }, { scoreCandidates, unscoredText }] = await Promise.all([
        import('../transfer/candidates-file.js'),
        import('../perplexity/index.js'),
      ]);
      // A task's candidates: its --candidates entry, else those its files carry, else its Definition list.
      const loaded = opts.candidates ? await readCandidatesFile(opts.candidates) : undefined;
      for (const { task: t, carried } of inputs) {
        const entry = loaded ? candidatesEntry(loaded, t.id) : undefined;
        if (entry) candidatesOf.set(t.id, entry.record.candidates);
        else if (carried) candidatesOf.set(t.id, carried);
        else if (loaded) throw new InputError({ file: loaded.file }, `no candidates for task ${t.id} (from ${t.source.file})`);
        else candidatesOf.set(t.id, definitionList(t).map((definition) => ({ definition })));
      }
      if (loaded) {
        const unused = unusedEntries(loaded, new Set(tasks.map((t) => t.id)));
        if (unused.length > 0) process.stderr.write(`uit: ${loaded.file}: ${unused.length} task(s) not among the inputs, ignored: ${unused.slice(0, 5).join(', ')}\n`);
      }

      const session = await openUitScoring('score-instructions', opts);
      const { scorer, cache } = session;
      session.onStart(tasks, tasks.map((t) => candidatesOf.get(t.id)!.map((c) => c.definition)));
      const out = new Output(opts.output);
      let status: 'ok' | 'failed' = 'failed';
      try {
        for (const t of tasks) {
          session.beforeTask(t);
          const cands = candidatesOf.get(t.id)!;
          const scores = await scoreCandidates(scorer, t, cands, { ...session.options, threshold: opts.threshold, topK: opts.topK });
          session.afterTask(t, scores);
          const files = cands.map((c) => c.file);
          out.write(opts.json ? `${JSON.stringify(taskJson(t, scores, files))}\n` : taskTable(t, scores, unscoredText));
        }
        out.commit();
        status = 'ok';
      } catch (err) {
        out.abort();
        throw err;
      } finally {
        await session.close(status);
      }
      process.stderr.write(summaryLine('score-instructions', scorer, cache));
    });
}
