// `uit demo`: the first command a newcomer runs. Converts the bundled sample (examples/p3 and
// examples/flan-trec: imdb and trec tasks, held out of the embedded model's training) to Ni-v2
// with the real pipeline: models/uit-tiny writes candidate definitions and scores them, the
// lowest perplexity wins. Shows one task's candidates, their perplexities and the pick, and
// writes everything to ./uit-demo-out. `--method heuristic` runs the model-free transfer instead.
import type { Command } from 'commander';
import { Option } from 'commander';
import { existsSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ModelError } from '../errors.js';
import type { ConvertSummary } from '../transfer/convert.js';
import type { PipelineSummary, TaskReport } from '../transfer/pipeline.js';
import { deviceOption, int } from '../cli-values.js';
import type { PipelineCliOptions } from '../transfer/pipeline-options.js';
import { summaryText } from './convert.js';

/** The bundled sample, next to src/ and dist/ in the package. */
export const EXAMPLES_DIR = fileURLToPath(new URL('../../examples/', import.meta.url));
/** The embedded model (issue 7), shipped in the package. */
export const DEMO_MODEL = fileURLToPath(new URL('../../models/uit-tiny', import.meta.url));

/** What the model demo converts: P3 and FLAN tasks of datasets held out of uit-tiny's training. */
export const DEMO_INPUTS = ['p3', 'flan-trec'] as const;
/** What the heuristic demo converts (no model: every instance-level format). */
export const HEURISTIC_PARTS = ['promptsource', 'flan', 'p3'] as const;

/** Small enough to finish in seconds on 2 cores; the options of convert --method model override them. */
export const DEMO_DEFAULTS = { numCandidates: 4, instances: 8, maxNewTokens: 64, out: 'uit-demo-out' } as const;

export interface DemoOptions extends PipelineCliOptions {
  method?: 'model' | 'heuristic';
  examplesDir?: string;
}

export interface DemoResult {
  out: string;
  model: string;
  summary: PipelineSummary;
  /** The task shown: its source instruction, every candidate with its score, and the pick. */
  example: {
    task: string;
    file: string | null;
    sourceFormat: string;
    sourceInstruction: string;
    instancesScored: number;
    candidates: { definition: string; perplexity: number | null; meanCe: number | null; rank: number | null; kept: boolean }[];
    chosen: number | null;
  } | null;
}

export async function runDemo(opts: DemoOptions): Promise<DemoResult> {
  const model = opts.model ?? DEMO_MODEL;
  if (!existsSync(model)) {
    throw new ModelError(
      model === DEMO_MODEL
        ? `the embedded model is missing from this installation (${model}); ` +
            'run `uit demo --model DIR` with a model folder (e.g. a GPT-J exported with scripts/export-gptj.py), ' +
            'or `uit demo --method heuristic` for the model-free transfer'
        : `${model}: no such model folder`,
    );
  }
  const dir = opts.examplesDir ?? EXAMPLES_DIR;
  const out = opts.out ?? DEMO_DEFAULTS.out;
  const [{ openPipeline }, { runPipeline }] = await Promise.all([import('../transfer/pipeline-cli.js'), import('../transfer/pipeline.js')]);
  const opened = await openPipeline('convert', DEMO_INPUTS.map((p) => join(dir, p)), {
    ...opts,
    model,
    out,
    // the demo's own folder: a rerun replaces it (only a uit output folder, see StagedDir)
    force: true,
    numCandidates: opts.numCandidates ?? DEMO_DEFAULTS.numCandidates,
    instances: opts.instances ?? DEMO_DEFAULTS.instances,
    maxNewTokens: opts.maxNewTokens ?? DEMO_DEFAULTS.maxNewTokens,
  });
  let shown: TaskReport | undefined;
  let summary: PipelineSummary;
  try {
    summary = await runPipeline({ ...opened.options, onTask: (r) => void (shown ??= r.scores ? r : undefined) });
  } finally {
    await opened.close();
  }
  const p = shown?.provenance;
  return {
    out,
    model,
    summary,
    example:
      shown && p
        ? {
            task: shown.id,
            file: shown.output === null ? null : join(out, shown.output),
            sourceFormat: (p.source as { format: string }).format,
            sourceInstruction: p.sourceInstruction as string,
            instancesScored: shown.scores!.setup.instances.length,
            candidates: shown.scores!.candidates.map((c) => ({ definition: c.definition, perplexity: c.perplexity, meanCe: c.meanCe, rank: c.rank, kept: c.kept })),
            chosen: shown.scores!.best,
          }
        : null,
  };
}

function indent(text: string, pad: string): string {
  return text.split('\n').map((l) => pad + l).join('\n');
}

/** The demo's report; `summary` is the pipeline's summary line (pipeline-cli.ts, summaryLine). */
export function demoText(r: DemoResult, summary: string): string {
  const lines: string[] = [];
  const rel = relative(process.cwd(), r.model) || r.model;
  const name = r.model === DEMO_MODEL ? 'models/uit-tiny (the embedded model)' : rel.startsWith('..') ? r.model : rel;
  lines.push(`uit demo: ${name} writes and scores Ni-v2 definitions for ${r.summary.tasks.ok + r.summary.tasks.failed} held-out tasks (examples/p3, examples/flan-trec)`);
  const e = r.example;
  if (e) {
    lines.push('');
    lines.push(`Task ${e.task} (${e.sourceFormat})`);
    lines.push('Source instruction:');
    lines.push(indent(e.sourceInstruction, '  '));
    lines.push(`Candidates (${e.candidates.length} sampled; perplexity of the gold outputs of ${e.instancesScored} instances, lower is better):`);
    const order = e.candidates.map((c, i) => ({ c, i })).sort((a, b) => (a.c.rank ?? Infinity) - (b.c.rank ?? Infinity) || a.i - b.i);
    for (const { c, i } of order) {
      const ppl = c.perplexity === null ? 'n/a' : c.perplexity.toFixed(2);
      const mark = i === e.chosen ? '*' : ' ';
      const text = c.definition === '' ? '(empty)' : c.definition.replace(/\n/g, ' ');
      lines.push(`  ${mark} #${i + 1}  ppl ${ppl.padStart(8)}  ${text}`);
    }
    lines.push(e.chosen === null ? 'No candidate kept.' : `Picked #${e.chosen + 1} (lowest perplexity); it is Definition[0] of ${e.file}`);
  }
  lines.push('');
  lines.push(summary);
  lines.push(`Every task is in ${r.out}/ (Ni-v2 JSON); ${r.out}/provenance.jsonl lists every candidate with its scores.`);
  return lines.join('\n') + '\n';
}

/** The model-free demo of the formats layer (heuristic transfer of every instance-level format). */
async function heuristicDemo(out: string, dir: string): Promise<{ out: string; summary: ConvertSummary; example: { file: string; task: Record<string, unknown> } }> {
  let exampleFile: string | undefined;
  const { convert } = await import('../transfer/convert.js');
  const summary = await convert({
    input: HEURISTIC_PARTS.map((p) => join(dir, p)),
    to: 'niv2',
    out,
    method: 'heuristic',
    quiet: true,
    force: true,
    onTask: (t) => void (exampleFile ??= t.output),
  });
  return { out, summary, example: { file: exampleFile!, task: JSON.parse(readFileSync(exampleFile!, 'utf8')) as Record<string, unknown> } };
}

export function register(program: Command): void {
  const cmd = program
    .command('demo')
    .summary('run the UIT pipeline on the bundled sample with the embedded model')
    .description(
      'Run the UIT pipeline on the bundled sample with the embedded model: candidate definitions, their ' +
        'perplexities and the pick, written as Ni-v2.',
    )
    .option('-o, --out <dir>', 'output folder', DEMO_DEFAULTS.out)
    .option('--model <dir>', 'transfer model and scorer (default: the embedded models/uit-tiny)')
    .addOption(new Option('--method <name>', 'model: the UIT pipeline; heuristic: no model, fields mapped directly').choices(['model', 'heuristic']).default('model'))
    .option('--num-candidates <n>', 'candidate definitions per task', int('--num-candidates', 1), DEMO_DEFAULTS.numCandidates)
    .option('--instances <m>', 'instances scored per candidate', int('--instances', 1), DEMO_DEFAULTS.instances)
    .option('--max-new-tokens <n>', 'longest candidate, in tokens', int('--max-new-tokens', 1), DEMO_DEFAULTS.maxNewTokens)
    .option('--seed <n>', 'sampling seed', int('--seed', 0), 0)
    .option('--cache <file>', 'SQLite cache of generations and scores (default: the per-user cache, docs/cache.md)')
    .addOption(deviceOption())
    .option('--threads <n>', 'onnxruntime intra-op threads (default: physical cores)', int('--threads', 1))
    .option('--json', 'print {out, model, summary, example} as JSON');
  cmd
    .addHelpText(
      'after',
      `
The sample: examples/p3 (2 imdb prompts) and examples/flan-trec (3 FLAN trec templates), datasets
held out of uit-tiny's training. The first run computes (seconds on 2 cores); generations and
scores go to the cache, so a second run makes no model calls. uit-tiny is small: its definitions
are plausible at best; the real use is your own exported GPT-J (uit convert --method model).

Examples:
  $ uit demo
  $ uit demo -o demo-out --num-candidates 8
  $ uit demo --json | jq '.example.candidates'
  $ uit demo --method heuristic`,
    )
    .action(async (opts: DemoOptions) => {
      if (opts.method === 'heuristic') {
        const r = await heuristicDemo(opts.out ?? DEMO_DEFAULTS.out, EXAMPLES_DIR);
        process.stdout.write(opts.json ? JSON.stringify(r, null, 2) + '\n' : summaryText(r.summary));
        return;
      }
      const r = await runDemo(opts);
      const { summaryLine } = await import('../transfer/pipeline-cli.js');
      process.stdout.write(opts.json ? JSON.stringify(r, null, 2) + '\n' : demoText(r, summaryLine(r.summary)));
      if (r.summary.tasks.failed > 0) process.exitCode = 6;
    });
}
