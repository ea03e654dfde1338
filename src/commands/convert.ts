// `uit convert IN --to niv2|flan|alpaca`: read any supported format, transfer each task's
// instruction with a method (heuristic until a model is given), write the target format.
// Only option declarations load with the CLI; readers, writers and models load when it runs.
import type { Command } from 'commander';
import { Option } from 'commander';
import { int } from '../cli-values.js';
import type { TargetFormat } from '../formats/api.js';
import { FORMAT_NAMES, formatList, TARGET_NAMES } from '../formats/names.js';
import { ExitCode, UitError } from '../errors.js';
import type { ConvertSummary } from '../transfer/convert.js';
import { addDenoiseOptions, addRunOptions, addTransferOptions, type PipelineCliOptions } from '../transfer/pipeline-options.js';

interface ConvertCliOptions {
  to: TargetFormat;
  from?: string;
  out?: string;
  method: string;
  rows?: string;
  dataset?: string;
  examples: number;
  truncate: boolean;
  seed: number;
  json?: boolean;
  force?: boolean;
}

export function summaryText(s: ConvertSummary): string {
  const methods = Object.entries(s.methods)
    .map(([m, n]) => `${m} ${n}`)
    .join(', ');
  const lines = [
    `converted ${s.tasks} task${s.tasks === 1 ? '' : 's'} (${s.instances} instances) from ${s.from.join(', ')} to ${s.to}` +
      (s.out ? ` -> ${s.out}` : '') +
      (methods ? ` [${methods}]` : ''),
  ];
  if (s.provenance) lines.push(`provenance: ${s.provenance}`);
  if (s.skipped.length) {
    const first = s.skipped[0];
    lines.push(
      `skipped ${s.skipped.length} record${s.skipped.length === 1 ? '' : 's'}; first: ${first.file}${first.line ? ':' + first.line : ''}` +
        `${first.id ? ` (${first.id})` : ''}: ${first.reason}`,
    );
  }
  return lines.join('\n') + '\n';
}

export function register(program: Command): void {
  const cmd = program
    .command('convert')
    .summary('convert instruction data to Ni-v2, FLAN-style or Alpaca format')
    .description(
      "Convert instruction data to Ni-v2, FLAN-style or Alpaca format, rewriting each task's instruction " +
        'for the target format: mapped directly (--method heuristic, the default) or written by a model and ' +
        'picked by perplexity (--method model, the UIT pipeline).',
    )
    .argument('<input...>', 'data files or folders (format detected from the content; --from to override), converted into one output')
    .addOption(new Option('--to <format>', 'target format').choices(TARGET_NAMES).makeOptionMandatory())
    .addOption(new Option('--from <format>', 'input format (default: detected)').choices(FORMAT_NAMES))
    .option('-o, --out <path>', 'output: a folder, a .json file or a .jsonl file (default: JSONL on stdout)')
    .option('--force', 'replace an existing output folder as a whole (only one uit wrote: with provenance.jsonl); without it, a folder that holds files is refused')
    .option('--method <name>', 'transfer method: heuristic (fields mapped directly) or model (the UIT pipeline, docs/pipeline.md)', 'heuristic')
    .option('--rows <file>', 'dataset rows (JSONL) for PromptSource or FLAN templates')
    .option('--dataset <key>', 'FLAN: which dataset of a templates file (default: the rows file name)')
    .option('--examples <n>', 'Ni-v2 target: Positive Examples taken from the first one-output instances of a task that has none', int('--examples', 0), 2)
    .option('--no-truncate', "PromptSource: do not cut substituted values to 2048 characters (PromptSource's default cuts them)")
    .option('--seed <n>', 'seed for template helpers that pick at random (PromptSource choice/random) and, with --method model, for sampling', int('--seed', 0), 0)
    .option('--json', 'print the summary as JSON (needs -o: stdout would carry the data)');
  // --method model: the UIT pipeline (src/transfer/pipeline.ts); these options apply to it only.
  addTransferOptions(cmd);
  addDenoiseOptions(cmd);
  addRunOptions(cmd, { json: false });
  cmd
    .addHelpText(
      'after',
      `
Input formats (detected from the content):
${formatList()}

Output (--to): niv2 writes a folder of <task>.json files (released Ni-v2 layout), one .json
file (one task) or .jsonl (a task per line, with its "id"); flan writes a folder with
templates.json and rows/<task>.jsonl; alpaca writes a .json array or .jsonl.
Every task's provenance (source file, format, id, method) goes to a sidecar:
OUT/provenance.jsonl for a folder, OUT.provenance.jsonl for a file. Nothing is written if
the input is bad (exit code 3, with file:line: field in the message). A folder output
appears whole when the run ends; an existing folder that holds files is refused (exit 2)
unless --force, which replaces a uit output folder as a whole. A file output is replaced.

Examples (paths from the uit repository):
  $ uit convert examples/promptsource/ag_news/templates.yaml --rows examples/promptsource/ag_news/rows.jsonl --to niv2 -o out/ag_news
  $ uit convert examples/flan --to alpaca -o out/rte.jsonl
  $ uit convert flan2021_templates.json --rows examples/flan/rows/rte.jsonl --dataset rte --to niv2 -o out/rte.jsonl
  $ uit convert examples/p3/imdb_Reviewer_Enjoyment_Yes_No.jsonl --to niv2 | head -c 600
  $ uit convert ../shared/data/niv2/tasks --to niv2 -o out/niv2
  $ uit convert ../shared/data/niv2/tasks/task003_mctaco_question_generation_event_duration.json --to flan -o out/mctaco --json

With --method model, each task's instruction is rewritten by a transfer model: N candidates
are sampled, scored with the UIT scoring prompt by a scoring model, and the lowest-perplexity
one becomes the Definition (docs/pipeline.md). Everything goes through the cache (--cache).
  $ uit convert ../shared/data/p3_rendered/imdb_Reviewer_Enjoyment.jsonl --to niv2 --method model \
      --model models/uit-tiny -o out/imdb --num-candidates 8 --instances 32
  $ uit convert tasks/ --to niv2 --method model --model models/uit-tiny -o out/part-0 --shard 0/4`,
    )
    .action(async (input: string[], opts: ConvertCliOptions & PipelineCliOptions) => {
      if (opts.method === 'model') {
        const { runPipelineCommand } = await import('../transfer/pipeline-cli.js');
        await runPipelineCommand('convert', input, opts);
        return;
      }
      if (opts.json && !opts.out) throw new UitError('--json needs -o: without it the converted data goes to stdout', ExitCode.USAGE);
      const { convert } = await import('../transfer/convert.js');
      const summary = await convert({
        input,
        to: opts.to,
        from: opts.from,
        out: opts.out,
        method: opts.method,
        rows: opts.rows,
        dataset: opts.dataset,
        examples: opts.examples,
        truncate: opts.truncate,
        seed: opts.seed,
        quiet: opts.json === true,
        force: opts.force === true,
      });
      if (opts.json) process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
      else (opts.out ? process.stdout : process.stderr).write(summaryText(summary));
    });
}
