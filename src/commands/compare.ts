// `uit compare --offline A --api B`: how far offline instructions are from API ones.
// The comparison code (and, with --scorer, the model runtime) loads only when the command runs.
// With --scorer, this command builds the perplexity function from src/perplexity and hands it to
// src/compare, which knows only its type: compare and perplexity stay on one floor, unaware of
// each other.
import type { Command, Option } from 'commander';
import { ExitCode, UitError } from '../errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { SCORER_RUN_DEFAULTS, addScorerRunOptions, summaryLine, type ScorerCliOptions } from './score.js';
import { UIT_SCORING_DEFAULTS, addUitScoringOptions, openUitScoring, type UitScoringCliOptions } from './uit-scoring.js';

export interface CompareOptions extends Partial<Omit<ScorerCliOptions, 'model' | 'output'>>, Partial<UitScoringCliOptions> {
  offline: string;
  api: string;
  scorer?: string;
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
  // The scorer opens after both sides are read: bad input fails before the model loads.
  const session = opts.scorer ? await openUitScoring('compare', scoringOptions(opts, opts.scorer)) : undefined;
  let status: 'ok' | 'failed' = 'failed';
  let report;
  try {
    const scorer = session ? (await import('../perplexity/index.js')).definitionScorer(session.scorer, session.options, session) : undefined;
    report = await compareOutputs({ offlinePath: opts.offline, apiPath: opts.api, offline: offline.tasks, api: api.tasks, scorer });
    status = 'ok';
  } finally {
    await session?.close(status);
  }
  if (opts.html) writeFileAtomic(opts.html, renderHtml(report));
  if (opts.json) out.write(JSON.stringify(reportToJson(report), null, 2) + '\n');
  else {
    out.write(renderTable(report));
    if (opts.html) out.write(`\nHTML report written to ${opts.html}\n`);
  }
  if (session) process.stderr.write(summaryLine('compare', session.scorer, session.cache));
}

/** The scorer options, with the declared defaults for those a library caller of runCompare leaves out. */
function scoringOptions(opts: CompareOptions, model: string): ScorerCliOptions & UitScoringCliOptions {
  const given = Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) as CompareOptions;
  return { ...SCORER_RUN_DEFAULTS, ...UIT_SCORING_DEFAULTS, ...given, model };
}

export function register(program: Command): void {
  const cmd = program
    .command('compare')
    .summary('compare offline and API outputs task by task (ROUGE-L, BLEU, ...)')
    .description(
      'Compare two uit outputs task by task (offline vs API instructions): ROUGE-L, BLEU, exact match, ' +
        'lengths, and with --scorer which instruction better predicts the gold outputs (lower perplexity).',
    )
    .requiredOption('--offline <path>', 'offline output: a folder of Ni-v2 task files, one Ni-v2 JSON file, or JSONL of Ni-v2-shaped tasks')
    .requiredOption('--api <path>', 'API output, same forms as --offline')
    .option('--json', 'print the comparison as JSON: {"tasks", "only_offline", "only_api", "summary"}')
    .option('--html <file>', 'also write a self-contained HTML report (histogram, word diff, sortable side-by-side table)')
    .option('--scorer <dir>', 'a model folder that scores both instructions by perplexity, as `uit score-instructions --model DIR` does');
  // Every option below applies to --scorer only; they are score-instructions' own declarations.
  const first = cmd.options.length;
  addUitScoringOptions(addScorerRunOptions(cmd));
  const scoringOnly: Option[] = cmd.options.slice(first);
  cmd
    .addHelpText(
      'after',
      `
Tasks are matched by id (a task file's name without .json; "id", "task" or "name" in JSONL).
ROUGE-L is rouge-score's default (lowercase, alphanumeric tokens, no stemming); BLEU is sacrebleu's
sentence BLEU (13a tokens, exp smoothing) of the offline instruction against the API one; both in [0, 1].
Exact match ignores differences in whitespace only.

With --scorer DIR, each instruction is scored as \`uit score-instructions -m DIR\` scores a
candidate definition: the UIT prompt (the instruction, two positive examples, an instance's input),
the mean cross-entropy of the gold outputs of up to --instances instances from the --seed shuffle,
perplexity = exp(mean CE); both instructions on the offline side's examples and instances. The
scores go to the same cache, so a rerun, or score-instructions on the same definitions, makes no
model call. The lower perplexity wins. The options from --cache to --seed apply with --scorer only.

Examples:
  $ uit compare --offline out/offline --api out/api
  $ uit compare --offline offline.jsonl --api api.jsonl --json | jq .summary
  $ uit compare --offline out/offline --api out/api --html report.html
  $ uit compare --offline out/offline --api out/api --scorer models/uit-tiny --instances 8 --html report.html`,
    )
    .action(async (opts: CompareOptions) => {
      if (!opts.scorer) {
        // --cache and --no-cache set one value: name the one that was given
        const given = scoringOnly.find(
          (o) => cmd.getOptionValueSource(o.attributeName()) === 'cli' && (cmd.getOptionValue(o.attributeName()) === false) === o.negate,
        );
        if (given) throw new UitError(`${given.long} applies to --scorer only: add --scorer DIR, or leave ${given.long} out`, ExitCode.USAGE);
      }
      await runCompare(opts);
    });
}
