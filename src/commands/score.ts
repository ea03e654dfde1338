// `uit score`: teacher-forced scores of raw (prefix, target) pairs from a JSONL file, with prefix
// reuse and the cache. Also the scorer options and setup shared with `uit score-instructions`.
import { Option, type Command } from 'commander';
import { deviceOption, int, positive } from '../cli-values.js';
import type { Cache, JsonObject } from '../cache/index.js';
import { DEFAULT_CACHE_HELP, defaultCachePath } from '../cache/location.js';
import { InputError } from '../errors.js';
import { AtomicWriter } from '../io/atomic.js';
import { readJsonl } from '../io/jsonl.js';
import { OVERFLOW_POLICIES, type OverflowPolicy } from '../perplexity/defaults.js';
// SQLite, the scorer and the runtime (onnxruntime-node), zod and the progress bar load when a command runs.
import type { PairScore, ScorePair, Scorer } from '../perplexity/index.js';
import type { Progress } from '../progress.js';
import type { Device, Model } from '../runtime/index.js';

export interface ScorerCliOptions {
  model: string;
  /** A path, false for --no-cache, undefined for the default cache. */
  cache?: string | false;
  batchSize: number;
  overflow: OverflowPolicy;
  maxContext?: number;
  reuse: boolean;
  device: Device;
  threads?: number;
  json?: boolean;
  output?: string;
}

/** The options every scoring command takes: the model, where output goes, and how the scorer runs. */
export function addScorerOptions(cmd: Command): Command {
  return addScorerRunOptions(
    cmd
      .requiredOption('-m, --model <dir>', 'scoring model folder (config.json, tokenizer.json, onnx/model.onnx and/or onnx/model.fast.onnx)')
      .option('-o, --output <file>', 'write the output to FILE (atomically) instead of stdout')
      .option('--json', 'JSON lines instead of a table'),
  );
}

/** The defaults of the run options below (also for callers of the commands' run functions that leave them out). */
export const SCORER_RUN_DEFAULTS = { batchSize: 8, overflow: 'truncate-left', reuse: true, device: 'cpu' } as const satisfies Partial<ScorerCliOptions>;

/** How the scorer runs (cache, batching, context, device): also declared by `uit compare` for its --scorer. */
export function addScorerRunOptions(cmd: Command): Command {
  return cmd
    .option('--cache <file>', `SQLite cache of scores (default: ${DEFAULT_CACHE_HELP}; here ${defaultCachePath().replace(process.env.HOME ?? '\0', '~')})`)
    .option('--no-cache', 'compute everything, store nothing')
    .option('--batch-size <n>', 'continuations run together in one forward call', int('--batch-size', 1), SCORER_RUN_DEFAULTS.batchSize)
    .addOption(
      new Option('--overflow <policy>', 'prefix + target longer than the context: drop prefix tokens from the left, or fail naming the pair')
        .choices(OVERFLOW_POLICIES as string[])
        .default(SCORER_RUN_DEFAULTS.overflow),
    )
    .option('--max-context <n>', "context length in tokens (default: the model's n_positions)", int('--max-context', 2))
    .option('--no-reuse', 'run every sequence whole (no shared prefixes; for comparisons)')
    .addOption(deviceOption())
    .option('--threads <n>', 'onnxruntime intra-op threads (default: physical cores)', int('--threads', 1));
}

export interface OpenedScorer {
  model: Model;
  scorer: Scorer;
  cache?: Cache;
  close(status: 'ok' | 'failed'): Promise<void>;
}

/** Loads the model, opens the cache (before the model: a bad cache fails fast) and makes the scorer. */
export async function openScorer(
  command: string,
  opts: ScorerCliOptions,
  onBatch?: (pairs: number, targetTokens: number) => void,
  /** More of the run's arguments for the cache's run log (e.g. the scoring mode). */
  runArgs: JsonObject = {},
): Promise<OpenedScorer> {
  const [{ openCache }, { Scorer }, { loadModel, describeDevice }] = await Promise.all([
    import('../cache/index.js'),
    import('../perplexity/index.js'),
    import('../runtime/index.js'),
  ]);
  const cache = opts.cache === false ? undefined : openCache(opts.cache ?? defaultCachePath());
  let model: Model;
  try {
    model = await loadModel(opts.model, { device: opts.device, threads: opts.threads });
  } catch (err) {
    cache?.close();
    throw err;
  }
  if (opts.device !== 'cpu') process.stderr.write(`uit: ${describeDevice(model.info)}\n`);
  const scorer = new Scorer(model, {
    cache,
    batchSize: opts.batchSize,
    overflow: opts.overflow,
    maxPositions: opts.maxContext,
    reuse: opts.reuse,
    onBatch: onBatch ? (p) => onBatch(p.pairs, p.targetTokens) : undefined,
  });
  const args: JsonObject = { model: model.info.dir, batch_size: opts.batchSize, overflow: opts.overflow, reuse: opts.reuse, ...runArgs };
  if (opts.maxContext !== undefined) args.max_context = opts.maxContext;
  cache?.startRun(command, args);
  return {
    model,
    scorer,
    cache,
    async close(status) {
      try {
        if (cache) cache.finishRun(status, { ...scorerCounts(scorer), cache: JSON.parse(JSON.stringify(cache.counters)) as JsonObject });
      } finally {
        cache?.close();
        await model.dispose();
      }
    },
  };
}

function scorerCounts(scorer: Scorer): JsonObject {
  return { ...scorer.stats };
}

/** One line for stderr after a scoring command. */
export function summaryLine(command: string, scorer: Scorer, cache: Cache | undefined): string {
  const s = scorer.stats;
  const secs = s.ms / 1000;
  const rate = s.ms > 0 && s.targetTokens > 0 ? `, ${Math.round(s.targetTokens / secs)} target tokens/s` : '';
  return (
    `uit ${command}: ${s.pairs} pairs (${s.computed} computed, ${s.cacheHits} from the cache, ${s.empty} empty) in ${secs.toFixed(1)} s; ` +
    `${plural(s.modelCalls, 'model call')} (${plural(s.prefills, 'prefill')} + ${plural(s.batches, 'batch', 'batches')})${rate}; ` +
    (cache ? `cache ${cache.path}` : 'no cache') +
    '\n'
  );
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** Where output goes: stdout, or a temp file renamed into place at the end. */
export class Output {
  private readonly writer?: AtomicWriter;

  constructor(file: string | undefined) {
    if (file) this.writer = new AtomicWriter(file);
  }

  write(text: string): void {
    if (this.writer) this.writer.write(text);
    else process.stdout.write(text);
  }

  commit(): void {
    this.writer?.commit();
  }

  abort(): void {
    this.writer?.abort();
  }
}

// ---- uit score ----------------------------------------------------------------------------------

interface InputPair extends ScorePair {
  line: number;
  id?: string | number;
}

/** Reads {"prefix", "target", "id"?} lines; other fields are ignored. */
export async function readPairs(file: string): Promise<InputPair[]> {
  const { z } = await import('zod');
  const pairSchema = z.object({
    prefix: z.string({ error: 'expected a string' }),
    target: z.string({ error: 'expected a string' }),
    id: z.union([z.string(), z.number()]).optional(),
  });
  const pairs: InputPair[] = [];
  for await (const { value, line } of readJsonl(file)) {
    const parsed = pairSchema.safeParse(value);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const field = issue.path.join('.') || undefined;
      const reason = field ? issue.message : 'expected an object {"prefix": string, "target": string, "id"?: string|number}';
      throw new InputError({ file, line, field }, reason);
    }
    pairs.push({ ...parsed.data, line, where: { file, line } });
  }
  if (pairs.length === 0) throw new InputError({ file }, 'no pairs (expected one {"prefix": ..., "target": ...} per line)');
  return pairs;
}

/**
 * Pairs are scored in fixed chunks of input lines, so memory stays bounded and the work plan, and
 * with it every number, is the same in a rerun whatever the cache holds.
 */
export const SCORE_CHUNK = 2048;

interface ScoreCommandOptions extends ScorerCliOptions {
  perToken?: boolean;
}

function pairJson(p: InputPair, s: PairScore, scorer: Scorer, perToken: boolean): Record<string, unknown> {
  const o: Record<string, unknown> = { line: p.line };
  if (p.id !== undefined) o.id = p.id;
  o.tokens = s.tokens;
  o.sum_ce = s.sumCe;
  o.mean_ce = s.meanCe;
  o.perplexity = s.meanCe === null ? null : Math.exp(s.meanCe);
  o.truncated_prefix_tokens = s.truncatedPrefixTokens;
  o.cached = s.cached;
  if (perToken) o.per_token = perTokenList(s, scorer);
  return o;
}

function perTokenList(s: PairScore, scorer: Scorer): { id: number; text: string; logprob: number | null }[] {
  const tok = scorer.model.tokenizer;
  return s.targetIds.map((id, k) => ({ id, text: tok.tokenText(id), logprob: s.logprobs ? s.logprobs[k] : null }));
}

const TABLE_HEADER = ['line', 'id', 'tokens', 'sum_ce', 'mean_ce', 'perplexity', 'truncated'];

function pairRow(p: InputPair, s: PairScore): string {
  const fmt = (x: number | null, digits: number) => (x === null ? 'null' : x.toFixed(digits));
  return [
    String(p.line),
    p.id === undefined ? '' : String(p.id),
    String(s.tokens),
    fmt(s.sumCe, 4),
    fmt(s.meanCe, 4),
    fmt(s.meanCe === null ? null : Math.exp(s.meanCe), 3),
    String(s.truncatedPrefixTokens),
  ].join('\t');
}

export function register(program: Command): void {
  const cmd = program
    .command('score')
    .summary('teacher-forced scores of (prefix, target) pairs')
    .description('Teacher-forced scores of (prefix, target) pairs: tokens, summed and mean cross-entropy (natural log), perplexity.')
    .argument('<pairs.jsonl>', 'one {"prefix": "...", "target": "...", "id"?: ...} per line');
  addScorerOptions(cmd)
    .option('--per-token', "add every target token's text and log-probability")
    .addHelpText(
      'after',
      `
Prefix and target are tokenized separately and the ids concatenated. Pairs whose token prefixes
share a long beginning run it once (prefix reuse); the numbers equal scoring each pair whole.
An empty target is scored as null. Every score is looked up in and stored to the cache, one
transaction per batch: a killed run loses nothing, and a rerun makes no model calls.

Plain output is a tab-separated table in input order (with --per-token, each pair's tokens follow
it as indented rows: index, JSON text, log-prob); --json prints one object per pair:
  {"line", "id"?, "tokens", "sum_ce", "mean_ce", "perplexity", "truncated_prefix_tokens", "cached", "per_token"?: [{"id", "text", "logprob"}]}

Examples:
  $ uit score --model models/uit-tiny pairs.jsonl
  $ uit score -m models/uit-tiny pairs.jsonl --json --per-token > scores.jsonl
  $ uit score -m models/uit-tiny pairs.jsonl --cache run.sqlite --batch-size 16 -o scores.tsv
  $ uit score -m models/uit-tiny pairs.jsonl --overflow error --max-context 512 --no-cache`,
    )
    .action(async (file: string, opts: ScoreCommandOptions) => {
      const pairs = await readPairs(file);
      let progress: Progress | undefined;
      let ticked = 0;
      const opened = await openScorer('score', opts, (n) => {
        ticked += n;
        progress?.tick(n, { hits: opened.scorer.stats.cacheHits });
      });
      const { scorer, cache } = opened;
      const { createProgress } = await import('../progress.js');
      progress = createProgress({ label: 'score', total: pairs.length, quiet: opts.json, payload: { hits: 0 }, extraFormat: 'cache hits {hits}' });
      const out = new Output(opts.output);
      let status: 'ok' | 'failed' = 'failed';
      try {
        // The header goes out with the first chunk: a pair that fails validation leaves stdout empty.
        let header = opts.json ? '' : `${TABLE_HEADER.join('\t')}\n`;
        for (let start = 0; start < pairs.length; start += SCORE_CHUNK) {
          const chunk = pairs.slice(start, start + SCORE_CHUNK);
          ticked = 0;
          const scores = await scorer.score(chunk);
          progress.tick(chunk.length - ticked); // empty targets and repeated pairs never reach a batch
          let text = header;
          header = '';
          chunk.forEach((p, i) => {
            const s = scores[i];
            if (opts.json) text += `${JSON.stringify(pairJson(p, s, scorer, opts.perToken === true))}\n`;
            else {
              text += `${pairRow(p, s)}\n`;
              if (opts.perToken) {
                perTokenList(s, scorer).forEach((t, k) => {
                  text += `  ${k}\t${JSON.stringify(t.text)}\t${t.logprob === null ? 'null' : t.logprob.toFixed(4)}\n`;
                });
              }
            }
          });
          out.write(text);
        }
        out.commit();
        status = 'ok';
      } catch (err) {
        out.abort();
        throw err;
      } finally {
        progress.stop();
        await opened.close(status);
      }
      process.stderr.write(summaryLine('score', scorer, cache));
    });
}
