// The shipped default model, models/uit-tiny, through onnxruntime-node and @huggingface/tokenizers
// directly: it loads, fits the size budget, agrees with its tokenizer, and has learned English
// task definitions: on Ni-v2 definitions it never saw in training, its perplexity (from
// model.fast.onnx's token_logprobs) is below that on the same words shuffled. Then the same folder through the
// project's runtime: greedy transfer from a held-out template gives a definition-like answer.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { Tokenizer } from '@huggingface/tokenizers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel, generate, type Model } from '../../src/runtime/index.js';
import { buildTransferPrompt, TRANSFER_STOP } from '../../src/transfer/prompt.js';

// UIT_TINY_MODEL: test a retrained folder before it replaces models/uit-tiny.
const MODEL = process.env.UIT_TINY_MODEL ?? fileURLToPath(new URL('../../models/uit-tiny', import.meta.url));
const DATA = fileURLToPath(new URL('../../../shared/data', import.meta.url));
const HAVE_DATA = existsSync(join(DATA, 'niv2', 'tasks'));

// niv2/tasks files outside the Ni-v2 default train split: scripts/tiny_corpus.py keeps them (their
// definitions, examples, instances) out of training (the default test split is not in ../shared/data).
const HELD_OUT = [
  'task1552_scitail_question_generation',
  'task203_mnli_sentence_generation',
  'task1579_gigaword_incorrect_summarization',
  'task624_ohsumed_question_answering',
  'task748_glucose_reverse_cause_event_detection',
];

interface Config {
  n_layer: number;
  n_head: number;
  n_embd: number;
  vocab_size: number;
  eos_token_id: number;
}
const config = JSON.parse(readFileSync(join(MODEL, 'config.json'), 'utf8')) as Config;
const headDim = config.n_embd / config.n_head;

function folderBytes(dir: string): number {
  return readdirSync(dir).reduce((n, f) => {
    const p = join(dir, f);
    return n + (statSync(p).isDirectory() ? folderBytes(p) : statSync(p).size);
  }, 0);
}

/** A fixed word shuffle (Fisher-Yates on a small LCG), so the comparison is the same every run. */
function shuffleWords(text: string, seed: number): string {
  const w = text.split(/\s+/).filter(Boolean);
  let s = seed >>> 0;
  for (let i = w.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const j = s % (i + 1);
    [w[i], w[j]] = [w[j], w[i]];
  }
  return w.join(' ');
}

let tokenizer: Tokenizer;
let fast: ort.InferenceSession;

/** Sum of -log p over the text's tokens, each predicted from <|endoftext|> + the tokens before. */
async function nll(text: string): Promise<{ sum: number; tokens: number }> {
  const ids = [config.eos_token_id, ...tokenizer.encode(text, { add_special_tokens: false }).ids];
  const n = ids.length;
  const feeds: Record<string, ort.Tensor> = {
    input_ids: new ort.Tensor('int64', BigInt64Array.from(ids.map(BigInt)), [1, n]),
    attention_mask: new ort.Tensor('int64', new BigInt64Array(n).fill(1n), [1, n]),
    position_ids: new ort.Tensor('int64', BigInt64Array.from(ids.map((_, i) => BigInt(i))), [1, n]),
    // log-probs of the last n-1 tokens, i.e. of every token after <|endoftext|>
    num_logprobs: new ort.Tensor('int64', BigInt64Array.from([BigInt(n - 1)]), []),
    inv_temperature: new ort.Tensor('float32', Float32Array.of(1), []),
    sample_uniform: new ort.Tensor('float64', new Float64Array(1), [1]),
  };
  // zero-length caches: past_key_values.* and, where the graph has them, shared_key_values.*
  for (const name of fast.inputNames)
    if (name.startsWith('past_key_values.') || name.startsWith('shared_key_values.'))
      feeds[name] = new ort.Tensor('float32', new Float32Array(0), [1, config.n_head, 0, headDim]);
  const out = await fast.run(feeds, ['token_logprobs']);
  const lp = out.token_logprobs.data as Float32Array;
  expect(lp.length).toBe(n - 1);
  return { sum: -lp.reduce((a, b) => a + b, 0), tokens: n - 1 };
}

beforeAll(async () => {
  tokenizer = new Tokenizer(
    JSON.parse(readFileSync(join(MODEL, 'tokenizer.json'), 'utf8')),
    JSON.parse(readFileSync(join(MODEL, 'tokenizer_config.json'), 'utf8')),
  );
  fast = await ort.InferenceSession.create(join(MODEL, 'onnx', 'model.fast.onnx'), { intraOpNumThreads: 2 });
});

afterAll(async () => {
  await fast?.release();
});

describe('models/uit-tiny', () => {
  it('is a complete model folder under 40 MB whose graphs match config.json', () => {
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json', 'MODEL_CARD.md'])
      expect(existsSync(join(MODEL, f)), f).toBe(true);
    for (const f of ['model.onnx', 'model.fast.onnx', 'model.onnx_data', 'parity.json'])
      expect(existsSync(join(MODEL, 'onnx', f)), f).toBe(true);
    expect(folderBytes(MODEL)).toBeLessThan(40e6);
    const pastInputs = fast.inputNames.filter((n) => n.startsWith('past_key_values.'));
    expect(pastInputs.length).toBe(2 * config.n_layer);
    expect(fast.outputNames).toContain('token_logprobs');
    expect(fast.outputNames).toContain('logits_last');
  });

  it('has a tokenizer that round-trips text and ends documents with its eos id', () => {
    expect(tokenizer.token_to_id('<|endoftext|>')).toBe(config.eos_token_id);
    expect(Object.keys(JSON.parse(readFileSync(join(MODEL, 'tokenizer.json'), 'utf8')).model.vocab).length).toBe(config.vocab_size);
    const text = 'Definition: In this task, you\'re given a café review — classify it as "POS" or "NEG".\n\nOutput: ';
    const ids = tokenizer.encode(text, { add_special_tokens: false }).ids;
    expect(tokenizer.decode(ids)).toBe(text);
    // a BPE trained on English instructions: common words are single tokens
    expect(tokenizer.encode(' task', { add_special_tokens: false }).ids.length).toBe(1);
    expect(ids.length).toBeLessThan(text.length / 2.5);
  });

  it.skipIf(!HAVE_DATA)('has lower perplexity on held-out Ni-v2 definitions than on their shuffled words', async () => {
    let orig = { sum: 0, tokens: 0 };
    let shuf = { sum: 0, tokens: 0 };
    for (const [k, name] of HELD_OUT.entries()) {
      const task = JSON.parse(readFileSync(join(DATA, 'niv2', 'tasks', `${name}.json`), 'utf8')) as { Definition: string[] };
      const def = task.Definition[0].split(/\s+/).filter(Boolean).join(' ');
      const a = await nll(def);
      const b = await nll(shuffleWords(def, k + 1));
      const pa = Math.exp(a.sum / a.tokens);
      const pb = Math.exp(b.sum / b.tokens);
      expect(pa, `${name}: ${pa.toFixed(1)} vs shuffled ${pb.toFixed(1)}`).toBeLessThan(pb);
      orig = { sum: orig.sum + a.sum, tokens: orig.tokens + a.tokens };
      shuf = { sum: shuf.sum + b.sum, tokens: shuf.tokens + b.tokens };
    }
    const ppl = Math.exp(orig.sum / orig.tokens);
    const pplShuffled = Math.exp(shuf.sum / shuf.tokens);
    // well below: the pooled perplexity under a quarter of the shuffled one (the shipped model:
    // 120 vs 1157; after 50 of its 1000 training steps the ratio was about 2), and far from uniform
    expect(ppl * 4, `${ppl.toFixed(1)} vs shuffled ${pplShuffled.toFixed(1)}`).toBeLessThan(pplShuffled);
    expect(ppl).toBeLessThan(config.vocab_size / 10);
  });
});

describe.skipIf(!HAVE_DATA)('models/uit-tiny in the runtime', () => {
  let model: Model;
  beforeAll(async () => {
    model = await loadModel(MODEL, { threads: 2 });
  });
  afterAll(async () => {
    await model?.dispose();
  });

  it('writes a definition for a held-out template with the transfer prompt, stopping at the blank line', async () => {
    expect(model.info.fastGeneration).toBe(true);
    // PromptSource ag_news (a held-out dataset: none of its templates were trained on)
    const prompt = buildTransferPrompt('What label best describes this news article?\n{text}', 'pair');
    const res = await generate(model, [{ prompt, numSamples: 1 }], {
      maxNewTokens: 64,
      greedy: true,
      stop: TRANSFER_STOP,
      seed: 0,
    });
    const sample = res.outputs[0].samples[0];
    const text = sample.text.trim();
    expect(text.length).toBeGreaterThan(20);
    expect(text).not.toContain('\n\n');
    expect(text).toMatch(/^[A-Z"]/);
    // English words, not byte soup: most whitespace-separated pieces are alphabetic
    const words = text.split(/\s+/);
    expect(words.filter((w) => /^[A-Za-z'",.:;()?-]+$/.test(w)).length / words.length).toBeGreaterThan(0.7);
  });
});
