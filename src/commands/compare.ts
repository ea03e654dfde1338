// `uit compare --offline A --api B`: how far offline instructions are from API ones.
// The comparison code (and, with --scorer, the model runtime) loads only when the command runs.
import type { Command } from 'commander';
import { int } from '../cli-values.js';
import { writeFileAtomic } from '../io/atomic.js';

interface CompareOptions {
  offline: string;
  api: string;
  scorer?: string;
  instances: number;
  seed: number;
  json?: boolean;
  html?: string;
}

export async function runCompare(opts: CompareOptions, out: NodeJS.WritableStream = process.stdout): Promise<void> {
  const [{ compareOutputs, reportToJson }, { readCompareSide }, { renderTable }, { renderHtml }] = await Promise.all([
    import('../compare/report.js'),
    import('../compare/read.js'),
    import('../compare/table.js'),
    import('../compare/html.js'),
  ]);
  const offline = readCompareSide(opts.offline);
  const api = readCompareSide(opts.api);
  const scorer = opts.scorer
    ? await (await import('../compare/scorer.js')).loadDefinitionScorer(opts.scorer, { maxInstances: opts.instances, seed: opts.seed, quiet: opts.json === true })
    : undefined;
  const report = await compareOutputs({ offlinePath: opts.offline, apiPath: opts.api, offline: offline.tasks, api: api.tasks, scorer });
  if (opts.html) writeFileAtomic(opts.html, renderHtml(report));
  if (opts.json) out.write(JSON.stringify(reportToJson(report), null, 2) + '\n');
  else {
    out.write(renderTable(report));
    if (opts.html) out.write(`\nHTML report written to ${opts.html}\n`);
  }
}

export function register(program: Command): void {
  program
    .command('compare')
    .summary('compare offline and API outputs task by task (ROUGE-L, BLEU, ...)')
    .description(
      'Compare two uit outputs task by task (offline vs API instructions): ROUGE-L, BLEU, exact match, ' +
        'lengths, and with --scorer which instruction better predicts the gold outputs (lower perplexity).',
    )
    .requiredOption('--offline <path>', 'offline output: a folder of Ni-v2 task files, one Ni-v2 JSON file, or JSONL of Ni-v2-shaped tasks')
    .requiredOption('--api <path>', 'API output, same forms as --offline')
    .option('--scorer <dir>', 'a model folder that scores both instructions by perplexity (UIT scoring prompt)')
    .option('--instances <m>', 'instances scored per task with --scorer', int('--instances', 1), 32)
    .option('--seed <n>', 'seed of the instance sample with --scorer', int('--seed'), 0)
    .option('--json', 'print the comparison as JSON: {"tasks", "only_offline", "only_api", "summary"}')
    .option('--html <file>', 'also write a self-contained HTML report (histogram, sortable side-by-side table)')
    .addHelpText(
      'after',
      `
Tasks are matched by id (a task file's name without .json; "id", "task" or "name" in JSONL).
ROUGE-L is rouge-score's default (lowercase, alphanumeric tokens, no stemming); BLEU is sacrebleu's
sentence BLEU (13a tokens, exp smoothing) of the offline instruction against the API one; both in [0, 1].
Exact match ignores differences in whitespace only.

Examples:
  $ uit compare --offline out/offline --api out/api
  $ uit compare --offline offline.jsonl --api api.jsonl --json | jq .summary
  $ uit compare --offline out/offline --api out/api --html report.html
  $ uit compare --offline out/offline --api out/api --scorer models/uit-tiny --instances 8`,
    )
    .action(async (opts: CompareOptions) => {
      await runCompare(opts);
    });
}
