// `uit score-instructions`: UIT perplexity scores of candidate definitions for Ni-v2 tasks, with
// ranks and the pick. Candidates come from a candidates JSONL (the file `uit transfer` writes) or,
// without one, from each task's own Definition list.
import type { Command } from 'commander';
import { InputError } from '../errors.js';
// The readers, the scorer and the runtime load when the command runs.
import type { TaskScores } from '../perplexity/index.js';
import type { Task } from '../types.js';
import { int, positive } from '../cli-values.js';
import { Output, addScorerOptions, summaryLine, type ScorerCliOptions } from './score.js';
import { addUitScoringOptions, openUitScoring, type UitScoringCliOptions } from './uit-scoring.js';

interface ScoreInstructionsOptions extends ScorerCliOptions, UitScoringCliOptions {
  candidates?: string;
  threshold?: number;
  topK?: number;
}

/** Every task of the given Ni-v2 files and folders, in order. */
async function readTasks(paths: readonly string[]): Promise<Task[]> {
  const { niv2 } = await import('../formats/niv2.js');
  const tasks: Task[] = [];
  const seen = new Map<string, string>();
  for (const p of paths) {
    for await (const lazy of niv2.read(p, {})) {
      const t = lazy.task;
      const first = seen.get(t.id);
      if (first !== undefined) throw new InputError({ file: t.source.file }, `task ${t.id} is also in ${first}`);
      seen.set(t.id, t.source.file);
      tasks.push(t);
    }
  }
  if (tasks.length === 0) throw new InputError({ file: paths.join(', ') }, 'no Ni-v2 tasks found');
  return tasks;
}

/** A Ni-v2 task's Definition list: Definition[0] is task.definition, the rest sit in source.extra. */
export function definitionList(task: Task): string[] {
  const rest = task.source.extra.Definition;
  return [task.definition, ...(Array.isArray(rest) ? rest.filter((d): d is string => typeof d === 'string') : [])];
}

function taskJson(t: Task, s: TaskScores): Record<string, unknown> {
  return {
    task: t.id,
    file: t.source.file,
    instances: s.setup.instances.map((x) => x.id),
    examples: s.setup.examples.length,
    examples_from_instances: s.setup.examplesFromInstances,
    examples_shortened: s.shortenedExamples,
    candidates: s.candidates.map((c) => ({
      index: c.index,
      definition: c.definition,
      mean_ce: c.meanCe,
      perplexity: c.perplexity,
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

function taskTable(t: Task, s: TaskScores): string {
  const from = s.setup.examplesFromInstances.length ? ` (${s.setup.examplesFromInstances.length} borrowed from instances)` : '';
  const n = (k: number, what: string) => `${k} ${what}${k === 1 ? '' : 's'}`;
  let out = `${t.id}: ${n(s.candidates.length, 'candidate')}, ${n(s.setup.instances.length, 'instance')}, ${n(s.setup.examples.length, 'example')}${from}\n`;
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
Without --candidates, each task's own Definition list is the candidate list. Prompts longer than
the model's context get their long inputs shortened in the middle ("beginning ... end"), never the
Definition (docs/scoring.md); only a prompt that cannot fit so meets --overflow.

Plain output: per task, its candidates by rank ("*" the pick, "+" also kept); --json: one
object per task: {"task", "file", "instances", "examples", "examples_from_instances",
"examples_shortened", "candidates": [{"index", "definition", "mean_ce", "perplexity", "tokens",
"instances_scored", "instances_empty", "instances_shortened", "fitted_alone",
"instances_truncated", "rank", "kept"}], "pick"}.

Examples:
  $ uit score-instructions -m models/uit-tiny ../data/niv2/tasks/task1147_country_currency.json
  $ uit score-instructions -m models/uit-tiny tasks/ --candidates candidates.jsonl --top-k 3 --json
  $ uit score-instructions -m models/uit-tiny tasks/ --candidates candidates.jsonl --threshold 20 --instances 16 --seed 1`,
    )
    .action(async (paths: string[], opts: ScoreInstructionsOptions) => {
      const tasks = await readTasks(paths);
      const candidatesOf = new Map<string, string[]>();
      const [{ readCandidatesFile }, { scoreCandidates }] = await Promise.all([import('../transfer/candidates-file.js'), import('../perplexity/index.js')]);
      if (opts.candidates) {
        const loaded = await readCandidatesFile(opts.candidates);
        for (const t of tasks) {
          const entry = loaded.byTask.get(t.id);
          if (!entry) throw new InputError({ file: opts.candidates }, `no candidates for task ${t.id} (from ${t.source.file})`);
          candidatesOf.set(t.id, entry.record.candidates);
        }
        const unused = [...loaded.byTask.keys()].filter((id) => !candidatesOf.has(id));
        if (unused.length > 0) process.stderr.write(`uit: ${opts.candidates}: ${unused.length} task(s) not among the inputs, ignored: ${unused.slice(0, 5).join(', ')}\n`);
      } else {
        for (const t of tasks) candidatesOf.set(t.id, definitionList(t));
      }

      const session = await openUitScoring('score-instructions', opts);
      const { scorer, cache } = session;
      session.onStart(tasks, tasks.map((t) => candidatesOf.get(t.id)!));
      const out = new Output(opts.output);
      let status: 'ok' | 'failed' = 'failed';
      try {
        for (const t of tasks) {
          session.beforeTask(t);
          const scores = await scoreCandidates(scorer, t, candidatesOf.get(t.id)!, { ...session.options, threshold: opts.threshold, topK: opts.topK });
          session.afterTask(t, scores);
          out.write(opts.json ? `${JSON.stringify(taskJson(t, scores))}\n` : taskTable(t, scores));
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
