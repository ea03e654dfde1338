// Batched, KV-cached generation. A batch is a group of rows (one row = one sample of one prompt):
// the group's distinct prompts are prefilled once (left-padded together), and then every step runs
// one token per live row, fetching only the last position's logits. Finished rows leave the batch.
// Each row samples from its own seeded stream.
//
// Where the prompt KV lives: when the generation graph takes shared_key_values, the prompts' common
// prefix (the whole prompt for N samples of one prompt) is prefilled once into a one-row cache that
// every row attends to without a copy, and the rows' own buffers hold only what follows it (the
// rest of their prompt and the generated tokens). Otherwise each prompt's KV cache is copied into
// its rows.
import { ExitCode, UitError } from '../../errors.js';
import { IncrementalDecoder } from '../../tokenizer/index.js';
import type { Backend } from '../backend.js';
import { step } from '../forward.js';
import { MIN_GROWTH, growthStep, type KvStore } from '../kv-cache.js';
import type { Model } from '../model.js';
import { buildProbsWarpers, buildProcessors, isGreedy, type LogitsProcessor, type ProbsWarper, type SamplingParams } from './processors.js';
import { sampleRng, type Rng } from './prng.js';
import { argmax, sampleFromProbs, sampleMultinomial } from './sampler.js';
import { StopMatcher } from './stop.js';
import { lookupDraft } from './prompt-lookup.js';

export type FinishReason = 'stop' | 'eos' | 'length';

export interface GenerateRequest {
  /** Text to continue; or `promptIds` to pass tokens directly. */
  prompt?: string;
  promptIds?: readonly number[];
  /** Samples to draw (default 1). */
  numSamples?: number;
  /** Index of the first sample (default 0): sample i is the same whichever call draws it. */
  firstSample?: number;
  /** Overrides the options' seed for this request. */
  seed?: number;
}

export interface GenerateOptions extends SamplingParams {
  maxNewTokens: number;
  /** Default 0. Sample i of a prompt draws from the stream (seed, i). */
  seed?: number;
  /** Text is cut before the first occurrence of any of these. */
  stop?: readonly string[];
  /** Stop at the tokenizer's EOS ids (default true). */
  stopOnEos?: boolean;
  /** Most rows decoded together (default 16). */
  batchSize?: number;
  /** Add the tokenizer's special tokens to the prompt (default false). */
  addSpecialTokens?: boolean;
  /** Called after every decoding step with the number of new tokens produced in it. */
  onTokens?: (count: number) => void;
  /**
   * Greedy decoding of one row: tokens drafted per step by prompt lookup (the continuation of the
   * latest earlier occurrence of the last few tokens), all verified in one forward. The text is the
   * greedy text either way (up to float rounding on exact near-ties: a verified position's logits
   * come from a wider matrix product). Default 8; 0 turns it off. Needs a fast graph with
   * token_argmax and no repetition penalty.
   */
  draftTokens?: number;
}

export interface GeneratedSample {
  /** Sample index (firstSample + position). */
  index: number;
  text: string;
  /** Generated ids, including a final EOS and any tokens past a stop string. */
  tokenIds: number[];
  finishReason: FinishReason;
}

export interface GenerationOutput {
  promptTokens: number;
  samples: GeneratedSample[];
}

export interface GenerationTimings {
  /** Wall time of the prompt forwards. */
  prefillMs: number;
  /** Wall time of the decoding steps (forward + sampling). */
  decodeMs: number;
  totalMs: number;
  promptTokens: number;
  newTokens: number;
  /** Forward passes run for decoding. */
  steps: number;
  /** Prompt lookup: tokens drafted, and how many of them the model confirmed. */
  draftedTokens: number;
  acceptedTokens: number;
}

export interface GenerateResult {
  /** One entry per request, in request order. */
  outputs: GenerationOutput[];
  timings: GenerationTimings;
}

interface Row {
  request: number;
  sample: number;
  prompt: readonly number[];
  rng: Rng;
  /** Prompt then generated ids, for the repetition penalty. */
  tokens: number[];
  generated: number[];
  decoder: IncrementalDecoder;
  text: string;
  finish?: FinishReason;
}

function validate(opts: GenerateOptions): void {
  const bad = (msg: string): never => {
    throw new UitError(msg, ExitCode.USAGE);
  };
  if (!Number.isInteger(opts.maxNewTokens) || opts.maxNewTokens < 1) bad(`max new tokens must be a positive integer, got ${opts.maxNewTokens}`);
  if (opts.batchSize !== undefined && (!Number.isInteger(opts.batchSize) || opts.batchSize < 1)) bad(`batch size must be a positive integer`);
  if (opts.seed !== undefined && !Number.isSafeInteger(opts.seed)) bad(`seed must be an integer, got ${opts.seed}`);
  if (opts.draftTokens !== undefined && (!Number.isInteger(opts.draftTokens) || opts.draftTokens < 0)) bad(`draft tokens must be a non-negative integer`);
  try {
    buildProcessors(opts);
  } catch (err) {
    bad((err as Error).message);
  }
}

/** Generates `numSamples` continuations of every request's prompt. */
export async function generate(model: Model, requests: readonly GenerateRequest[], opts: GenerateOptions): Promise<GenerateResult> {
  validate(opts);
  const t0 = performance.now();
  const tok = model.tokenizer;
  const prompts = requests.map((r, i) => {
    let ids = r.promptIds ? [...r.promptIds] : tok.encode(r.prompt ?? '', { addSpecialTokens: opts.addSpecialTokens });
    if (ids.length === 0) {
      if (tok.bosTokenId === undefined) {
        throw new UitError(`request ${i}: the prompt is empty and the tokenizer has no BOS token to start from`, ExitCode.BAD_INPUT);
      }
      ids = [tok.bosTokenId];
    }
    const max = model.info.maxPositions;
    if (max !== undefined && ids.length >= max) {
      throw new UitError(`request ${i}: the prompt has ${ids.length} tokens; the model takes at most ${max} positions`, ExitCode.BAD_INPUT);
    }
    return ids;
  });

  const rows: Row[] = [];
  requests.forEach((r, i) => {
    const n = r.numSamples ?? 1;
    const first = r.firstSample ?? 0;
    if (!Number.isInteger(n) || n < 0) throw new UitError(`request ${i}: numSamples must be a non-negative integer`, ExitCode.USAGE);
    if (!Number.isInteger(first) || first < 0) throw new UitError(`request ${i}: firstSample must be a non-negative integer`, ExitCode.USAGE);
    if (r.seed !== undefined && !Number.isSafeInteger(r.seed)) throw new UitError(`request ${i}: seed must be an integer, got ${r.seed}`, ExitCode.USAGE);
    for (let s = first; s < first + n; s++) {
      rows.push({
        request: i,
        sample: s,
        prompt: prompts[i],
        rng: sampleRng(r.seed ?? opts.seed ?? 0, s), // unused by greedy decoding
        tokens: [...prompts[i]],
        generated: [],
        decoder: new IncrementalDecoder(tok, prompts[i]),
        text: '',
      });
    }
  });

  const timings: GenerationTimings = { prefillMs: 0, decodeMs: 0, totalMs: 0, promptTokens: 0, newTokens: 0, steps: 0, draftedTokens: 0, acceptedTokens: 0 };
  // one matcher for the streaming check and the final cut
  const stop = new StopMatcher(opts.stop ?? []);
  const engine = new Engine(model, opts, stop, timings);
  for (const group of groupRows(rows, opts.batchSize ?? 16, model.backend.hasPositionIds)) await engine.run(group);

  const outputs: GenerationOutput[] = prompts.map((p) => ({ promptTokens: p.length, samples: [] }));
  for (const row of rows) {
    outputs[row.request].samples.push({
      index: row.sample,
      text: finalText(model, row, stop),
      tokenIds: row.generated,
      finishReason: row.finish!, // every row ends with a reason (accept sets it)
    });
  }
  timings.totalMs = performance.now() - t0;
  return { outputs, timings };
}

/**
 * The text of a finished row: the generated ids (without a final EOS) decoded with the tokenizer's
 * own settings, cut before the first stop string. If space clean-up hid a stop string that the
 * streaming text saw, the streaming text is cut instead.
 */
function finalText(model: Model, row: Row, stop: StopMatcher): string {
  const ids = row.finish === 'eos' ? row.generated.slice(0, -1) : row.generated;
  const full = stop.cut(model.tokenizer.decode(ids));
  if (row.finish === 'stop' && !full.stopped) return stop.cut(row.text).text;
  return full.text;
}

/**
 * Splits rows into batches of at most `batchSize`, in order. A graph without position_ids computes
 * positions itself and cannot take left padding, so there each batch holds one prompt length.
 */
function groupRows(rows: Row[], batchSize: number, positionIds: boolean): Row[][] {
  const groups: Row[][] = [];
  let cur: Row[] = [];
  for (const row of rows) {
    const mismatch = !positionIds && cur.length > 0 && cur[0].prompt.length !== row.prompt.length;
    if (cur.length === batchSize || mismatch) {
      groups.push(cur);
      cur = [];
    }
    cur.push(row);
  }
  if (cur.length) groups.push(cur);
  return groups;
}

/** Prompt-lookup draft length: a step of 9 tokens costs little more than one when weights dominate. */
const DEFAULT_DRAFT_TOKENS = 8;

/** Length of the longest common prefix of the token sequences. */
function commonPrefix(seqs: readonly (readonly number[])[]): number {
  // past a shorter sequence's end it reads undefined, which no id equals
  let n = seqs[0].length;
  for (const s of seqs) {
    let i = 0;
    while (i < n && s[i] === seqs[0][i]) i++;
    n = i;
  }
  return n;
}

class Engine {
  private readonly backend: Backend;
  private readonly processors: LogitsProcessor[];
  /**
   * Set when the graph computes the sampling distribution (probs_last): the warpers that remain for
   * JS, and the temperature the graph applies. Exponentiating 50k logits per row in JS costs more
   * than the rest of a 16-row step's work outside the forward pass.
   */
  private readonly probs?: { warpers: ProbsWarper[]; temperature: number };
  private readonly greedy: boolean;
  /** Tokens to draft per step for a lone greedy row (0: no drafting). */
  private readonly draft: number;

  constructor(
    private readonly model: Model,
    private readonly opts: GenerateOptions,
    private readonly stop: StopMatcher,
    private readonly timings: GenerationTimings,
  ) {
    this.backend = model.backend;
    this.processors = buildProcessors(opts);
    this.greedy = isGreedy(opts);
    const warpers = this.backend.fast.generation && this.backend.fast.probs === true ? buildProbsWarpers(opts) : undefined;
    if (warpers) this.probs = { warpers, temperature: opts.temperature ?? 1 };
    // A processor (the repetition penalty) changes the argmax, which the graph's token_argmax
    // does not see; the slow path has no token_argmax.
    const canDraft = this.greedy && this.processors.length === 0 && this.backend.fast.generation && this.backend.fast.argmax === true && this.backend.hasPositionIds;
    this.draft = canDraft ? (opts.draftTokens ?? DEFAULT_DRAFT_TOKENS) : 0;
  }

  async run(group: Row[]): Promise<void> {
    // Distinct prompts of the group (rows of one request share its prompt array).
    const prompts: (readonly number[])[] = [];
    const promptOf = group.map((row) => {
      let i = prompts.indexOf(row.prompt);
      if (i === -1) i = prompts.push(row.prompt) - 1;
      return i;
    });
    const maxPositions = this.model.info.maxPositions;
    // Each row may generate until its own position limit, so a long neighbour in the batch
    // does not shorten a short prompt's output.
    const budgetOf = (row: Row) => Math.min(this.opts.maxNewTokens, maxPositions !== undefined ? maxPositions - row.prompt.length : Infinity);
    const budget = Math.max(...group.map(budgetOf));

    const tp = performance.now();
    // Every cache of the group is disposed when it ends (device memory is freed then, not at GC).
    const caches: KvStore[] = [];
    try {
      await this.runGroup(group, prompts, promptOf, budget, budgetOf, caches, tp);
    } finally {
      for (const c of caches) c.dispose(); // each frees only its own buffers: any order
    }
  }

  private async runGroup(
    group: Row[],
    prompts: (readonly number[])[],
    promptOf: number[],
    budget: number,
    budgetOf: (row: Row) => number,
    caches: KvStore[],
    tp: number,
  ): Promise<void> {
    const useShared = this.backend.fast.generation && this.backend.fast.sharedKv === true && this.backend.hasPositionIds;
    // The shared part: the whole prompt when there is one, else the prompts' common prefix less one
    // token (each prompt keeps a token of its own to predict from).
    const sharedLen = !useShared ? 0 : prompts.length === 1 ? prompts[0].length : Math.min(commonPrefix(prompts), Math.min(...prompts.map((p) => p.length)) - 1);
    const track = <T extends KvStore>(c: T): T => (caches.push(c), c);
    let sharedCache: KvStore | undefined;
    let pre: { vocabSize: number; last?: Float32Array; probs?: Float32Array };
    let promptCache: KvStore;
    if (sharedLen > 0) {
      sharedCache = track(this.backend.createKv(1, 0));
      pre = await step(this.backend, sharedCache, prompts[0].slice(0, sharedLen), sharedLen, 'last', { temperature: this.probs?.temperature });
    }
    const rest = prompts.map((p) => p.slice(sharedLen));
    const restLen = Math.max(...rest.map((p) => p.length));
    if (restLen > 0) {
      // The distinct prompts (after the shared part) in one left-padded batch.
      promptCache = track(this.backend.createKv(prompts.length, 0, sharedCache));
      const ids = new Int32Array(prompts.length * restLen);
      const valid = new Uint8Array(prompts.length * restLen);
      rest.forEach((p, r) => {
        const pad = restLen - p.length;
        for (let t = 0; t < p.length; t++) {
          ids[r * restLen + pad + t] = p[t];
          valid[r * restLen + pad + t] = 1;
        }
      });
      pre = await step(this.backend, promptCache, ids, restLen, 'last', { newValid: valid, temperature: this.probs?.temperature });
    } else {
      promptCache = track(this.backend.createKv(1, 0, sharedCache)); // one prompt, all of it shared
    }
    const vocab = pre!.vocabSize;
    this.timings.prefillMs += performance.now() - tp;
    this.timings.promptTokens += prompts.reduce((n, p) => n + p.length, 0);

    // Each row starts from a copy of its prompt's own part of the cache (nothing when the prompt is
    // all shared), with room for a chunk of generated tokens on the fast path; it grows by chunks.
    // (The slow path's cache is replaced by `present` every step anyway.) A graph without
    // position_ids may derive positions from the past length, so it gets no unused slots: its
    // cache grows one slot per step instead.
    const roomy = this.backend.fast.generation && this.backend.hasPositionIds;
    const cache = track(await promptCache.gather(promptOf, roomy ? restLen + Math.min(budget, growthStep(restLen)) : restLen));
    cache.growthChunk = this.backend.hasPositionIds ? MIN_GROWTH : 1;
    let live = group; // replaced, never changed in place
    // Every live row's next-token logits, or its distribution when the graph computes it (this.probs).
    let scores: Float32Array = new Float32Array(group.length * vocab);
    const first = this.probs ? pre!.probs! : pre!.last!;
    promptOf.forEach((p, r) => scores.set(first.subarray(p * vocab, (p + 1) * vocab), r * vocab));

    const td = performance.now();
    // A lone row's next token when a verified draft already decided it (no logits for it then).
    let decided: number | undefined;
    // Every live row's next token when the graph drew it (graphDraw), instead of `scores`.
    let drawn: Int32Array | undefined;
    const graphDraw = this.probs !== undefined && this.probs.warpers.length === 0 && this.backend.fast.sample === true;
    // Draft length adapts as in transformers' assisted generation: +2 after a fully kept draft, -1
    // after a refusal, so text the lookup does not predict costs short drafts, not long ones.
    let draftLen = this.draft;
    for (;;) {
      // Pick the next token of every live row.
      const next = new Int32Array(live.length);
      const keep: number[] = [];
      live.forEach((row, r) => {
        let t: number;
        if (decided !== undefined) t = decided;
        else if (drawn) t = drawn[r];
        else {
          const rowScores = scores.subarray(r * vocab, (r + 1) * vocab);
          if (this.probs) {
            for (const w of this.probs.warpers) w(rowScores);
            t = sampleFromProbs(rowScores, row.rng);
          } else {
            for (const p of this.processors) p(rowScores, row);
            t = this.greedy ? argmax(rowScores) : sampleMultinomial(rowScores, row.rng);
          }
        }
        next[r] = t;
        this.accept(row, t, budgetOf(row));
        if (!row.finish) keep.push(r);
      });
      decided = undefined;
      this.timings.newTokens += live.length;
      this.opts.onTokens?.(live.length);
      if (keep.length === 0) break;
      if (keep.length < live.length) {
        cache.compact(keep);
        live = keep.map((r) => live[r]);
      }
      const row = live[0];
      // Room for the drafts and the token after them, within the row's budget.
      const room = live.length === 1 ? Math.min(draftLen, budgetOf(row) - row.generated.length - 1) : 0;
      const draft = room > 0 ? lookupDraft(row.tokens, { maxDraft: room }) : [];
      if (draft.length === 0) {
        // A row's numbers come from its own generator in the order of its tokens, whether the graph
        // or sampleFromProbs uses them, so both give the same text (but for float32 rounding at a
        // token boundary, a few draws in a million).
        const sampleUniform = graphDraw ? Float64Array.from(live, (r) => r.rng.nextFloat()) : undefined;
        const out = await step(this.backend, cache, keep.map((r) => next[r]), 1, 'last', { temperature: this.probs?.temperature, sampleUniform });
        this.timings.steps++;
        if (graphDraw) drawn = out.sampled!;
        else scores = this.probs ? out.probs! : out.last!;
        continue;
      }
      // Verify: run the token and its drafts; the model's argmax after each position says how
      // many drafts it would have produced itself, and gives the token after them.
      const k = draft.length;
      const out = await step(this.backend, cache, [next[keep[0]], ...draft], k + 1, 'last', { argmaxTail: k });
      this.timings.steps++;
      this.timings.draftedTokens += k;
      const pred = out.argmax!;
      let m = 0;
      while (m < k && pred[m] === draft[m]) {
        this.accept(row, draft[m], budgetOf(row));
        m++;
        if (row.finish) break;
      }
      this.timings.acceptedTokens += m;
      draftLen = m === k ? Math.min(this.draft, draftLen + 2) : Math.max(1, draftLen - 1);
      this.timings.newTokens += m;
      if (m > 0) this.opts.onTokens?.(m);
      if (row.finish) break;
      cache.rewind(k - m);
      if (m < k) decided = pred[m];
      else scores = out.last!;
    }
    this.timings.decodeMs += performance.now() - td;
  }

  /** Records a token and decides whether the row is done. */
  private accept(row: Row, token: number, budget: number): void {
    row.generated.push(token);
    row.tokens.push(token);
    const tok = this.model.tokenizer;
    if ((this.opts.stopOnEos ?? true) && tok.isEos(token)) {
      row.finish = 'eos';
      return;
    }
    if (!this.stop.empty) {
      const before = row.text.length;
      row.text += row.decoder.push(token);
      // (no new text finds nothing: a match in the old text ended the row when it came)
      if (this.stop.find(row.text, before) !== -1) {
        row.finish = 'stop';
        return;
      }
    }
    if (row.generated.length >= budget) row.finish = 'length';
  }
}
