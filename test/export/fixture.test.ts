// The committed fixture test/fixtures/tiny-gptj (made by scripts/export-gptj.py --random-init):
// its three ONNX graphs against the PyTorch outputs in onnx/parity.json, the graph contract
// the runtime is written against, and the masking properties the runtime relies on.
import { cpSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { Tokenizer } from '@huggingface/tokenizers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkParity, concatKv } from '../../scripts/check-parity.mjs';

const FIXTURE = fileURLToPath(new URL('../fixtures/tiny-gptj', import.meta.url));
const ONNX = join(FIXTURE, 'onnx');
const config = JSON.parse(readFileSync(join(FIXTURE, 'config.json'), 'utf8')) as {
  n_layer: number;
  n_head: number;
  n_embd: number;
  vocab_size: number;
  eos_token_id: number;
};
const HEAD_DIM = config.n_embd / config.n_head;

const i64 = (rows: number[][]) =>
  new ort.Tensor('int64', BigInt64Array.from(rows.flat().map(BigInt)), [rows.length, rows[0].length]);

/** Zero-length past_key_values.* and (for the fast graphs) shared_key_values.*. */
function emptyPast(batch: number, shared = true): Record<string, ort.Tensor> {
  const past: Record<string, ort.Tensor> = {};
  for (let i = 0; i < config.n_layer; i++)
    for (const kv of ['key', 'value']) {
      past[`past_key_values.${i}.${kv}`] = new ort.Tensor('float32', new Float32Array(0), [batch, config.n_head, 0, HEAD_DIM]);
      if (shared) past[`shared_key_values.${i}.${kv}`] = new ort.Tensor('float32', new Float32Array(0), [1, config.n_head, 0, HEAD_DIM]);
    }
  return past;
}

/** Row 0 of a [1, h, t, d] tensor repeated `rows` times (the copy the shared inputs avoid). */
function repeatRows(t: ort.Tensor, rows: number): ort.Tensor {
  const src = t.data as Float32Array;
  const out = new Float32Array(src.length * rows);
  for (let r = 0; r < rows; r++) out.set(src, r * src.length);
  return new ort.Tensor('float32', out, [rows, ...t.dims.slice(1)]);
}

/** Insert `n` slots of garbage after position `at` of every past tensor (axis 2). */
function withGarbageSlots(past: Record<string, ort.Tensor>, at: number, n: number): Record<string, ort.Tensor> {
  const out: Record<string, ort.Tensor> = {};
  for (const [name, t] of Object.entries(past)) {
    const [b, h, tp, d] = t.dims;
    const src = t.data as Float32Array;
    const data = new Float32Array(b * h * (tp + n) * d);
    for (let bh = 0; bh < b * h; bh++) {
      const o = bh * (tp + n) * d;
      data.set(src.subarray(bh * tp * d, bh * tp * d + at * d), o);
      for (let j = 0; j < n * d; j++) data[o + at * d + j] = 1000 * Math.sin(j + bh); // large, so a leak shows
      data.set(src.subarray(bh * tp * d + at * d, (bh + 1) * tp * d), o + (at + n) * d);
    }
    out[name] = new ort.Tensor('float32', data, [b, h, tp + n, d]);
  }
  return out;
}

function newKvAsPast(out: ort.InferenceSession.OnnxValueMapType, as = 'past_key_values.'): Record<string, ort.Tensor> {
  const past: Record<string, ort.Tensor> = {};
  for (const [name, t] of Object.entries(out))
    if (name.startsWith('new_key_values.')) past[name.replace('new_key_values.', as)] = t as ort.Tensor;
  return past;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

let fast: ort.InferenceSession;
let main: ort.InferenceSession;

/** The fast graph's scalar inputs, and sample_uniform (read only when token_sampled is fetched). */
const num = (n: number, rows: number) => ({
  num_logprobs: new ort.Tensor('int64', BigInt64Array.of(BigInt(n)), []),
  inv_temperature: new ort.Tensor('float32', Float32Array.of(1), []),
  sample_uniform: new ort.Tensor('float64', new Float64Array(rows), [rows]),
});
/** model.fast.onnx as a generation step (num_logprobs 0: only the last position's logits). */
const genRun = (feeds: Record<string, ort.Tensor>) => fast.run({ ...feeds, ...num(0, feeds.input_ids.dims[0]) });
/** model.fast.onnx scoring every token but the first (num_logprobs = seq - 1). */
const scoreRun = (feeds: Record<string, ort.Tensor>) => fast.run({ ...feeds, ...num(feeds.input_ids.dims[1] - 1, feeds.input_ids.dims[0]) });

beforeAll(async () => {
  const opts = { intraOpNumThreads: 1, interOpNumThreads: 1 };
  [main, fast] = await Promise.all(
    ['model.onnx', 'model.fast.onnx'].map((f) => ort.InferenceSession.create(join(ONNX, f), opts)),
  );
});

afterAll(async () => {
  await Promise.all([main?.release(), fast?.release()]);
});

describe('tiny-gptj fixture', () => {
  it('matches PyTorch on parity.json (prefill with left padding, 3 cached steps) in all three graphs', async () => {
    const report = await checkParity(FIXTURE);
    expect(report.graphs.main.failures).toEqual([]);
    expect(report.graphs.fast.failures).toEqual([]);
    expect(report.consistency.logits_last.failures).toEqual([]);
    expect(report.consistency.token_logprobs.failures).toEqual([]);
    expect(report.consistency.new_key_values.failures).toEqual([]);
    expect(report.consistency.probs_last?.failures).toEqual([]);
    expect(report.consistency.probs_last?.compared).toBeGreaterThan(1000);
    expect(report.consistency.token_sampled?.failures).toEqual([]);
    expect(report.consistency.token_sampled?.compared).toBeGreaterThan(30);
    expect(report.ok).toBe(true);
    // Something was compared in every check (a check that compares nothing cannot fail).
    expect(report.graphs.main.compared).toBeGreaterThan(300);
    expect(report.graphs.fast.compared).toBeGreaterThan(300);
    expect(report.consistency.token_logprobs.compared).toBeGreaterThan(20);
    expect(report.shared).toEqual({ fastGraph: true, steps: 2 });
    expect(report.consistency.new_key_values.compared).toBeGreaterThan(1000);
    expect(report.graphs.main.maxAbsDiff).toBeLessThan(1e-4);
  });

  it('reports a mismatch: the check can fail', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'uit-parity-'));
    try {
      cpSync(FIXTURE, dir, { recursive: true });
      const file = join(dir, 'onnx', 'parity.json');
      const parity = JSON.parse(readFileSync(file, 'utf8'));
      parity.steps[2].expected.logits_last_head[1][5] += 0.01;
      parity.steps[3].expected.token_logprobs[0][1] -= 0.01;
      writeFileSync(file, JSON.stringify(parity));
      const report = await checkParity(dir);
      expect(report.ok).toBe(false);
      expect(report.graphs.main.failures.join('\n')).toContain('step 2 row 1 logits[last][5]');
      expect(report.graphs.fast.failures.join('\n')).toContain('step 2 row 1 logits_last[5]');
      expect(report.graphs.fast.failures.join('\n')).toContain('step 3 row 0 token_logprobs[1]');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('has the optimum text-generation-with-past inputs and outputs', () => {
    const past = Array.from({ length: config.n_layer }, (_, i) => [`past_key_values.${i}.key`, `past_key_values.${i}.value`]).flat();
    const present = past.map((n) => n.replace('past_key_values.', 'present.'));
    const fresh = past.map((n) => n.replace('past_key_values.', 'new_key_values.'));
    const shared = past.map((n) => n.replace('past_key_values.', 'shared_key_values.'));
    const inputs = ['input_ids', 'attention_mask', 'position_ids', ...past];
    expect(main.inputNames).toEqual(inputs);
    expect(main.outputNames).toEqual(['logits', ...present]);
    expect(fast.inputNames).toEqual([...inputs.slice(0, 3), 'num_logprobs', 'inv_temperature', 'sample_uniform', ...past, ...shared]);
    expect(fast.outputNames).toEqual(['logits_last', 'probs_last', 'token_sampled', 'token_logprobs', 'token_argmax', ...fresh]);
    const meta = (s: ort.InferenceSession, name: string) => {
      const m = [...s.inputMetadata, ...s.outputMetadata].find((x) => x.name === name);
      if (!m || !m.isTensor) throw new Error(`no tensor ${name}`);
      return m;
    };
    expect(meta(main, 'input_ids').type).toBe('int64');
    expect(meta(main, 'position_ids').type).toBe('int64');
    expect(meta(main, 'past_key_values.0.key').type).toBe('float32');
    expect(meta(main, 'past_key_values.0.key').shape).toEqual(['batch_size', config.n_head, 'past_sequence_length', HEAD_DIM]);
    expect(meta(main, 'logits').shape).toEqual(['batch_size', 'sequence_length', config.vocab_size]);
    expect(meta(fast, 'logits_last').shape).toEqual(['batch_size', config.vocab_size]);
    expect(meta(fast, 'new_key_values.1.value').shape).toEqual(['batch_size', config.n_head, 'sequence_length', HEAD_DIM]);
    expect(meta(fast, 'token_logprobs').type).toBe('float32');
    expect(meta(fast, 'token_logprobs').shape).toEqual(['batch_size', 'num_logprobs']);
    expect(meta(fast, 'token_argmax')).toMatchObject({ type: 'int64', shape: ['batch_size', 'num_logprobs'] });
    expect(meta(fast, 'num_logprobs')).toMatchObject({ type: 'int64', shape: [] });
    expect(meta(fast, 'inv_temperature')).toMatchObject({ type: 'float32', shape: [] });
    expect(meta(fast, 'probs_last')).toMatchObject({ type: 'float32', shape: ['batch_size', config.vocab_size] });
    expect(meta(fast, 'sample_uniform')).toMatchObject({ type: 'float64', shape: ['batch_size'] });
    expect(meta(fast, 'token_sampled')).toMatchObject({ type: 'int64', shape: ['batch_size'] });
    expect(meta(fast, 'shared_key_values.1.key').shape).toEqual([1, config.n_head, 'shared_sequence_length', HEAD_DIM]);
    expect(meta(fast, 'attention_mask').shape).toEqual(['batch_size', 'shared_sequence_length + past_sequence_length + sequence_length']);
  });

  it('scores the last num_logprobs tokens only: the same numbers as scoring all, and the same last logits', async () => {
    const ids = [[10, 20, 30, 40, 50, 60, 70], [71, 72, 73, 74, 75, 76, 77]];
    const feeds = {
      input_ids: i64(ids),
      attention_mask: i64(ids.map((r) => r.map(() => 1))),
      position_ids: i64(ids.map((r) => r.map((_, i) => i))),
      ...emptyPast(2),
    };
    const all = await fast.run({ ...feeds, ...num(6, 2) });
    expect(all.token_logprobs.dims).toEqual([2, 6]);
    for (const n of [0, 1, 3]) {
      const part = await fast.run({ ...feeds, ...num(n, 2) });
      expect(part.token_logprobs.dims).toEqual([2, n]);
      const want = [0, 1].flatMap((r) => Array.from((all.token_logprobs.data as Float32Array).subarray(r * 6 + 6 - n, (r + 1) * 6)));
      expect(maxAbsDiff(part.token_logprobs.data as Float32Array, want)).toBeLessThan(1e-5);
      expect(maxAbsDiff(part.logits_last.data as Float32Array, all.logits_last.data as Float32Array)).toBeLessThan(1e-5);
    }
  });

  it('reads a prefix passed once as shared_key_values like the prefix copied into every row', async () => {
    const prefix = [68, 101, 102, 105, 110, 105, 116, 105, 111, 110, 58, 32]; // "Definition: "
    const pre = await genRun({
      input_ids: i64([prefix]),
      attention_mask: i64([prefix.map(() => 1)]),
      position_ids: i64([prefix.map((_, i) => i)]),
      ...emptyPast(1),
    });
    const S = prefix.length;
    // Three rows continue it: row 1 with a padded first position, row 2 with two own past tokens.
    const own = await genRun({
      input_ids: i64([[65, 66], [0, 67], [68, 69]]),
      attention_mask: i64([...[[1, 1], [0, 1], [1, 1]].map((m) => [...prefix.map(() => 1), ...m])]),
      position_ids: i64([[S, S + 1], [1, S], [S, S + 1]]),
      ...emptyPast(3),
      ...newKvAsPast(pre, 'shared_key_values.'),
    });
    const step = { input_ids: i64([[70], [71], [72]]), position_ids: i64([[S + 2], [S + 1], [S + 2]]) };
    const ownMask = [[1, 1, 1], [0, 1, 1], [1, 1, 1]];
    const viaShared = await genRun({
      ...step,
      attention_mask: i64(ownMask.map((m) => [...prefix.map(() => 1), ...m])),
      ...newKvAsPast(own),
      ...newKvAsPast(pre, 'shared_key_values.'),
    });
    // The same with the prefix copied into each row's past, on model.fast.onnx and model.onnx.
    const copied: Record<string, ort.Tensor> = {};
    for (const [name, t] of Object.entries(newKvAsPast(own))) copied[name] = concatKv(repeatRows(pre[name.replace('past_key_values.', 'new_key_values.')] as ort.Tensor, 3), t);
    const feeds = { ...step, attention_mask: i64(ownMask.map((m) => [...prefix.map(() => 1), ...m])), ...copied };
    const viaCopies = await genRun({ ...feeds, ...emptyPast(3), ...copied });
    const viaMain = await main.run(feeds);
    const a = viaShared.logits_last.data as Float32Array;
    expect(maxAbsDiff(a, viaCopies.logits_last.data as Float32Array)).toBeLessThan(1e-5);
    const V = config.vocab_size;
    const lastOfMain = new Float32Array(3 * V);
    for (let r = 0; r < 3; r++) lastOfMain.set((viaMain.logits.data as Float32Array).subarray(r * V, (r + 1) * V), r * V);
    expect(maxAbsDiff(a, lastOfMain)).toBeLessThan(1e-5);
    // The shared part is read: without it (masked out) the result changes.
    const blind = await genRun({
      ...step,
      attention_mask: i64(ownMask.map((m) => [...prefix.map(() => 0), ...m])),
      ...newKvAsPast(own),
      ...newKvAsPast(pre, 'shared_key_values.'),
    });
    expect(maxAbsDiff(a, blind.logits_last.data as Float32Array)).toBeGreaterThan(1e-2);
  });

  it('stores the weights once, in onnx/model.onnx_data', () => {
    const data = statSync(join(ONNX, 'model.onnx_data')).size;
    const params =
      config.vocab_size * config.n_embd * 2 +
      config.vocab_size +
      config.n_layer * (4 * config.n_embd ** 2 + 2 * 4 * config.n_embd ** 2 + 4 * config.n_embd + 3 * config.n_embd);
    expect(data).toBeGreaterThanOrEqual(params * 4);
    // Each graph file is far smaller than the weights: none embeds them.
    for (const f of ['model.onnx', 'model.fast.onnx']) expect(statSync(join(ONNX, f)).size).toBeLessThan(data / 5);
    const cfg = JSON.parse(readFileSync(join(FIXTURE, 'config.json'), 'utf8'));
    expect(cfg.model_type).toBe('gptj');
    expect(cfg['transformers.js_config']).toEqual({ use_external_data_format: true });
  });

  it('ignores masked past slots, whatever they hold (a preallocated KV buffer)', async () => {
    const prompt = [[72, 101, 108, 108, 111, 44, 32]];
    const pre = await genRun({
      input_ids: i64(prompt),
      attention_mask: i64([prompt[0].map(() => 1)]),
      position_ids: i64([prompt[0].map((_, i) => i)]),
      ...emptyPast(1),
    });
    const past = newKvAsPast(pre);
    const step = { input_ids: i64([[119]]), position_ids: i64([[7]]) };
    const plain = await genRun({ ...step, attention_mask: i64([[1, 1, 1, 1, 1, 1, 1, 1]]), ...emptyPast(1), ...past });
    // Three unused slots in the middle, then two at the end of the past buffer.
    const gapped = withGarbageSlots(withGarbageSlots(past, 4, 3), 10, 2);
    const mask = [[1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 1]];
    const viaGap = await genRun({ ...step, attention_mask: i64(mask), ...emptyPast(1), ...gapped });
    const a = plain.logits_last.data as Float32Array;
    const b = viaGap.logits_last.data as Float32Array;
    expect(maxAbsDiff(a, b)).toBeLessThan(1e-5);
    // The garbage is large enough to matter when it is NOT masked.
    const leaky = await genRun({ ...step, attention_mask: i64([mask[0].map(() => 1)]), position_ids: i64([[12]]), ...emptyPast(1), ...gapped });
    expect(maxAbsDiff(a, leaky.logits_last.data as Float32Array)).toBeGreaterThan(1e-2);
  });

  it('gives a left-padded row the same results as the row alone, and rows do not mix', async () => {
    const a = [10, 20, 30, 40, 50, 60];
    const b = [70, 80, 90];
    const pad = config.eos_token_id;
    const batch = await scoreRun({
      input_ids: i64([a, [pad, pad, pad, ...b]]),
      attention_mask: i64([[1, 1, 1, 1, 1, 1], [0, 0, 0, 1, 1, 1]]),
      position_ids: i64([[0, 1, 2, 3, 4, 5], [1, 1, 1, 0, 1, 2]]),
      ...emptyPast(2),
    });
    const alone = await scoreRun({
      input_ids: i64([b]),
      attention_mask: i64([[1, 1, 1]]),
      position_ids: i64([[0, 1, 2]]),
      ...emptyPast(1),
    });
    const lp = batch.token_logprobs.data as Float32Array; // [2, 5]
    const lpAlone = alone.token_logprobs.data as Float32Array; // [1, 2]
    expect(maxAbsDiff(lp.subarray(5 + 3, 10), lpAlone)).toBeLessThan(1e-5);
    const first = await scoreRun({
      input_ids: i64([a]),
      attention_mask: i64([[1, 1, 1, 1, 1, 1]]),
      position_ids: i64([[0, 1, 2, 3, 4, 5]]),
      ...emptyPast(1),
    });
    expect(maxAbsDiff(lp.subarray(0, 5), first.token_logprobs.data as Float32Array)).toBeLessThan(1e-5);
    for (const v of lp) expect(v).toBeLessThan(0);
  });

  it('continues a cached prefix with concatenated new_key_values like one full pass', async () => {
    const ids = [5, 6, 7, 8, 9, 10, 11, 12];
    const full = await scoreRun({
      input_ids: i64([ids]),
      attention_mask: i64([ids.map(() => 1)]),
      position_ids: i64([ids.map((_, i) => i)]),
      ...emptyPast(1),
    });
    const head = await scoreRun({
      input_ids: i64([ids.slice(0, 5)]),
      attention_mask: i64([[1, 1, 1, 1, 1]]),
      position_ids: i64([[0, 1, 2, 3, 4]]),
      ...emptyPast(1),
    });
    // token_logprobs covers transitions inside one call: ids[5] given the prefix is the prefix
    // pass's last-position distribution (what logits_last gives), so f[4] is in neither call.
    const tail = await scoreRun({
      input_ids: i64([ids.slice(5)]),
      attention_mask: i64([ids.map(() => 1)]),
      position_ids: i64([[5, 6, 7]]),
      ...emptyPast(1),
      ...newKvAsPast(head),
    });
    const f = full.token_logprobs.data as Float32Array; // 7 values
    expect(maxAbsDiff((head.token_logprobs.data as Float32Array), f.subarray(0, 4))).toBeLessThan(1e-5);
    expect(maxAbsDiff((tail.token_logprobs.data as Float32Array), f.subarray(5, 7))).toBeLessThan(1e-5);
    const concatenated = concatKv(newKvAsPast(head)['past_key_values.1.key'], tail['new_key_values.1.key'] as ort.Tensor);
    expect(maxAbsDiff(concatenated.data as Float32Array, full['new_key_values.1.key'].data as Float32Array)).toBeLessThan(1e-5);
  });

  it('ships a byte-level tokenizer that @huggingface/tokenizers loads and round-trips', () => {
    const tj = JSON.parse(readFileSync(join(FIXTURE, 'tokenizer.json'), 'utf8'));
    const tc = JSON.parse(readFileSync(join(FIXTURE, 'tokenizer_config.json'), 'utf8'));
    const tok = new Tokenizer(tj, tc);
    const text = 'Definition: héllo 日本 🙂\n\n  Output: x';
    const enc = tok.encode(text);
    expect(enc.ids).toEqual([...Buffer.from(text, 'utf8')]);
    expect(tok.decode(enc.ids)).toBe(text);
    expect(tok.encode('a<|endoftext|>').ids).toEqual([97, 256]);
    expect(tc.eos_token).toBe('<|endoftext|>');
    expect(config.eos_token_id).toBe(256);
    const genCfg = JSON.parse(readFileSync(join(FIXTURE, 'generation_config.json'), 'utf8'));
    expect(genCfg.eos_token_id).toBe(256);
  });
});
