// `uit distill-data`: fine-tuning pairs for the offline transfer model from a teacher's (an API's)
// transfers, read from converted outputs or from the cache (docs/distill.md).
import { Command, InvalidArgumentError, Option } from 'commander';
import { float, int, positive } from '../cli-values.js';
import { ExitCode, UitError } from '../errors.js';
import { FORMAT_NAMES } from '../formats/names.js';

interface DistillCliOptions {
  out: string;
  cache?: string;
  teacher?: string[];
  scorer?: string;
  from?: string;
  rows?: string;
  dataset?: string;
  pick?: 'best' | 'all';
  threshold?: number;
  topK?: number;
  devShare: number;
  devPattern?: RegExp;
  familyPattern?: RegExp;
  seed: number;
  tokenizer?: string;
  maxTokens?: number;
  json?: boolean;
  force?: boolean;
}

function regex(name: string) {
  return (value: string): RegExp => {
    try {
      return new RegExp(value);
    } catch (err) {
      throw new InvalidArgumentError(`${name} is not a regular expression: ${(err as Error).message}`);
    }
  };
}

function usage(message: string): never {
  throw new UitError(message, ExitCode.USAGE);
}

const collect = (value: string, prev: string[] = []) => [...prev, value];

export function register(program: Command): void {
  program
    .command('distill-data')
    .summary('fine-tuning pairs for the offline transfer model from API transfers')
    .description(
      "Fine-tuning pairs (transfer prompt -> the teacher's definition + EOS) for the offline transfer model, from a " +
        "teacher's converted outputs (their provenance.jsonl) or from its generations and scores in a cache; " +
        'deduplicated, split into train and dev by task family, with a report of what was dropped and why.',
    )
    .argument('<input...>', 'converted outputs of the teacher (folders with provenance.jsonl, or .json/.jsonl outputs); with --cache, the source tasks it transferred')
    .requiredOption('-o, --out <dir>', 'output folder: train.jsonl, dev.jsonl, report.json')
    .option('--cache <file>', "read the teacher's generations and scores from this uit cache; the inputs are then the source tasks")
    .option('--teacher <id>', 'with --cache: the teacher model, by id or name (repeatable; default: every API model with generations)', collect)
    .option('--scorer <id>', 'with --cache: whose scores rank the candidates (default: the only scorer in the cache)')
    .addOption(new Option('--from <format>', 'with --cache: format of the source tasks (default: detected)').choices(FORMAT_NAMES))
    .option('--rows <file>', 'with --cache: dataset rows (JSONL) for PromptSource or FLAN templates')
    .option('--dataset <key>', 'with --cache: FLAN dataset of a templates file')
    .addOption(
      new Option('--pick <which>', "best: the denoiser's pick; all: every candidate (default: best, or all with --threshold/--top-k)").choices([
        'best',
        'all',
      ]),
    )
    .option('--threshold <ppl>', 'keep candidates whose perplexity is at most PPL', positive('--threshold'))
    .option('--top-k <k>', 'keep the k lowest-perplexity candidates of each task', int('--top-k', 1))
    .option('--dev-share <f>', 'share of task families that go to dev', float('--dev-share', (n) => n >= 0 && n <= 1, 'in [0, 1]'), 0.1)
    .option('--dev-pattern <regex>', 'the families of tasks whose id matches go to dev, all others to train (instead of --dev-share)', regex('--dev-pattern'))
    .option('--family-pattern <regex>', "a task's family is the first capture group of REGEX on its id, where it matches", regex('--family-pattern'))
    .option('--seed <n>', 'seed of the family split', int('--seed', 0), 0)
    .option('--tokenizer <dir>', "a model folder (the student's): add token ids, EOS last, for scripts/finetune-gptj.py")
    .option('--max-tokens <n>', "with --tokenizer: longest prompt + target + EOS (default: the folder's context length)", int('--max-tokens', 2))
    .option('--json', 'print the report (as in report.json) on stdout')
    .option('--force', 'replace an earlier distill-data output folder at -o (one with report.json); without it, a folder that holds files is refused')
    .addHelpText(
      'after',
      `
Each pair is {"id", "task", "family", "split", "prompt", "target", "prompt_ids"?, "target_ids"?,
"tokenizer"?, "teacher", "score", "source", "from"}: the prompt is the transfer prompt's pair style
("Instruction: ...\\nDefinition:", as uit transfer --prompt-style pair builds it), the target " " +
the definition; target_ids end with the tokenizer's EOS. Families: a task's dataset (from its id),
joined with every task that shares a prompt or a target; --dev-share picks families by a seeded hash.

Examples:
  $ uit distill-data teacher-out/ -o pairs/ --tokenizer models/uit-tiny
  $ uit distill-data teacher-out/ -o pairs/ --pick all --threshold 40 --dev-pattern '^p3/(ag_news|imdb)_'
  $ uit distill-data ../shared/data/p3_rendered/ --cache api.sqlite --teacher gpt-4o-mini -o pairs/ --top-k 2`,
    )
    .action(async (input: string[], o: DistillCliOptions) => {
      const cacheOnly = (['teacher', 'scorer', 'from', 'rows', 'dataset'] as const).filter((k) => o[k] !== undefined);
      if (!o.cache && cacheOnly.length > 0) usage(`--${cacheOnly[0]} needs --cache (it says how to read the teacher from a cache)`);
      if (!o.tokenizer && o.maxTokens !== undefined) usage('--max-tokens needs --tokenizer (tokens are counted with it)');
      const { distillData, summaryLine } = await import('../distill/index.js');
      const report = await distillData({
        inputs: input,
        cache: o.cache,
        teachers: o.teacher,
        scorer: o.scorer,
        from: o.from,
        rows: o.rows,
        dataset: o.dataset,
        out: o.out,
        force: o.force,
        pick: { pick: o.pick ?? (o.threshold !== undefined || o.topK !== undefined ? 'all' : 'best'), threshold: o.threshold, topK: o.topK },
        split: { devShare: o.devShare, devPattern: o.devPattern, familyPattern: o.familyPattern, seed: o.seed },
        tokenizer: o.tokenizer,
        maxTokens: o.maxTokens,
      });
      if (o.json) process.stdout.write(JSON.stringify(report, null, 2) + '\n');
      process.stderr.write(summaryLine(report) + '\n');
    });
}
