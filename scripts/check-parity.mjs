#!/usr/bin/env node
// Check an exported model folder against its onnx/parity.json with onnxruntime-node:
// model.onnx and model.fast.onnx on the recorded inputs (feeding the KV cache back for
// the cached steps, and a shared prefix for the `shared` steps), within the recorded
// tolerance, and the fast graph against model.onnx. One graph is loaded at a time (model.onnx's
// outputs are kept, then it is released before model.fast.onnx loads), so a model is never in
// memory twice. Run after exporting on the machine that will use the model:
//   node scripts/check-parity.mjs out/gpt-j-6b-onnx
// Also imported by test/export/*.test.ts (types in check-parity.d.mts).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as ort from 'onnxruntime-node';

const i64 = (rows) => {
  const b = rows.length;
  const s = rows[0].length;
  return new ort.Tensor('int64', BigInt64Array.from(rows.flat().map((v) => BigInt(v))), [b, s]);
};

/** Concat two [b, h, t, d] tensors' data on axis 2 (raw element copy, any dtype). */
export function concatKv(past, fresh) {
  const [b, h, tp, d] = past.dims;
  const tn = fresh.dims[2];
  const Out = past.data.constructor;
  const out = new Out(b * h * (tp + tn) * d);
  for (let bh = 0; bh < b * h; bh++) {
    out.set(past.data.subarray(bh * tp * d, (bh + 1) * tp * d), bh * (tp + tn) * d);
    out.set(fresh.data.subarray(bh * tn * d, (bh + 1) * tn * d), bh * (tp + tn) * d + tp * d);
  }
  return new ort.Tensor(past.type, out, [b, h, tp + tn, d]);
}

/** The trailing `n` positions (axis 2) of a [b, h, t, d] tensor. */
export function tailKv(t, n) {
  const [b, h, tt, d] = t.dims;
  const out = new t.data.constructor(b * h * n * d);
  for (let bh = 0; bh < b * h; bh++) out.set(t.data.subarray((bh * tt + tt - n) * d, (bh + 1) * tt * d), bh * n * d);
  return new ort.Tensor(t.type, out, [b, h, n, d]);
}

/** Zero-length past_key_values.* [batch, H, 0, D] and shared_key_values.* [1, H, 0, D] for a session. */
function emptyPast(session, batch) {
  const past = {};
  for (const name of session.inputNames) {
    const shared = name.startsWith('shared_key_values.');
    if (!name.startsWith('past_key_values.') && !shared) continue;
    const meta = session.inputMetadata.find((m) => m.name === name);
    const type = meta.type; // 'float32' | 'float16'
    const [, heads, , headDim] = meta.shape;
    const data = type === 'float16' ? new Uint16Array(0) : new Float32Array(0);
    past[name] = new ort.Tensor(type, data, [shared ? 1 : batch, heads, 0, headDim]);
  }
  return past;
}

/** Row 0 of a [1, h, t, d] tensor repeated `rows` times. */
function repeatRows(t, rows) {
  const out = new t.data.constructor(t.data.length * rows);
  for (let r = 0; r < rows; r++) out.set(t.data, r * t.data.length);
  return new ort.Tensor(t.type, out, [rows, ...t.dims.slice(1)]);
}

const hasShared = (session) => session.inputNames.includes('shared_key_values.0.key');

/** What int8 activation rounding may move a logit or a KV entry by (export-gptj.py's QUANT_TOLERANCE). */
export const ACTIVATION_ROUNDING = { atol: 0.25, rtol: 0.05 };

/** IEEE half bits to a number (onnxruntime-node hands float16 data out as Uint16Array). */
function halfToNumber(h) {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

const valueAt = (t, j) => (t.type === 'float16' ? halfToNumber(t.data[j]) : Number(t.data[j]));

function logSoftmaxAt(row, idx) {
  let max = -Infinity;
  for (const v of row) if (v > max) max = v;
  let sum = 0;
  for (const v of row) sum += Math.exp(v - max);
  return row[idx] - max - Math.log(sum);
}

function logSumExp(row) {
  let max = -Infinity;
  for (const v of row) if (v > max) max = v;
  let sum = 0;
  for (const v of row) sum += Math.exp(v - max);
  return max + Math.log(sum);
}

class Diff {
  constructor(tol) { this.tol = tol; this.max = 0; this.worst = 0; this.count = 0; this.failures = []; }
  add(what, got, want) {
    const d = Math.abs(got - want);
    const allowed = this.tol.atol + this.tol.rtol * Math.abs(want);
    this.count++;
    if (d > this.max) this.max = d;
    if (!(d <= allowed)) this.failures.push(`${what}: got ${got}, want ${want} (|diff| ${d.toExponential(2)} > ${allowed.toExponential(2)})`);
  }
}

// inv_temperature (probs_last's scalar input) is required where the graph has it; 1 leaves the logits as they are.
const num = (n, invT = 1) => ({
  num_logprobs: new ort.Tensor('int64', BigInt64Array.from([BigInt(n)]), []),
  inv_temperature: new ort.Tensor('float32', Float32Array.of(invT), []),
});

/** The token where the running sum of `probs` passes u x their total: what token_sampled must be. */
function drawAt(probs, u) {
  let total = 0;
  for (const p of probs) total += p;
  let left = u * total;
  for (let j = 0; j < probs.length; j++) {
    if (probs[j] === 0) continue;
    left -= probs[j];
    if (left < 0) return j;
  }
  for (let j = probs.length - 1; j >= 0; j--) if (probs[j] !== 0) return j;
  return 0;
}

/**
 * Whether `token` is what a draw at u x total picks give or take `eps` x total: the graph's block
 * sums are float32, so a u that close to a boundary may land on the neighbour.
 */
export function drawnNear(probs, u, token, eps = 1e-6) {
  let total = 0;
  for (const p of probs) total += p;
  let before = 0;
  for (let j = 0; j < token; j++) before += probs[j];
  const t = u * total;
  return probs[token] > 0 && t >= before - eps * total && t < before + probs[token] + eps * total;
}

/** Pairs of numbers u for the two rows, the ends of [0, 1) included. */
const UNIFORMS = [[0, 1 - 2 ** -53], [0.25, 0.5], [0.75, 0.1]];

/** softmax(logits * invT) in float64, what probs_last must hold. */
function softmaxScaled(logits, invT) {
  let max = -Infinity;
  for (const v of logits) if (v * invT > max) max = v * invT;
  const e = Array.from(logits, (v) => Math.exp(v * invT - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / sum);
}

/**
 * One step of a sequence on model.onnx and model.fast.onnx, compared with parity.json's expected
 * values (PyTorch) and with each other. The fast graph runs with num_logprobs = s-1 (every token
 * scored), 0 (generation: no token_logprobs) and 1, which must agree where they overlap.
 */
async function compareStep(label, step, outMain, fast, fastFeeds, vsMain, consistency) {
  const s = step.input_ids[0].length;
  const exp = step.expected;
  const logits = outMain.logits;
  const V = logits.dims[2];
  const rowAt = (b, t) => logits.data.subarray((b * s + t) * V, (b * s + t + 1) * V);
  // sample_uniform is required where the graph has it (token_sampled's input), read only when that is fetched.
  if (fast?.inputNames.includes('sample_uniform')) fastFeeds = { ...fastFeeds, sample_uniform: new ort.Tensor('float64', new Float64Array(2), [2]) };
  const outFast = fast ? await fast.run({ ...fastFeeds, ...num(s - 1) }) : undefined;
  for (let b = 0; b < 2; b++) {
    const last = rowAt(b, s - 1);
    exp.logits_last_head[b].forEach((want, j) => vsMain.main.add(`${label} row ${b} logits[last][${j}]`, last[j], want));
    vsMain.main.add(`${label} row ${b} logsumexp`, logSumExp(last), exp.logsumexp_last[b]);
    // The reference's argmax must be a top logit here too (ties within tolerance allowed).
    const top = last.reduce((m, v) => (v > m ? v : m), -Infinity);
    vsMain.main.add(`${label} row ${b} logit of the reference argmax ${exp.argmax_last[b]} vs the top logit`, last[exp.argmax_last[b]], top);
    (exp.logits_probe?.[b] ?? []).forEach((vals, t) => {
      if (vals === null) return;
      vals.forEach((want, j) => vsMain.main.add(`${label} row ${b} pos ${t} logits[${exp.logits_probe_ids[j]}]`, rowAt(b, t)[exp.logits_probe_ids[j]], want));
    });
    if (!outFast) continue;
    const lastFast = outFast.logits_last.data.subarray(b * V, (b + 1) * V);
    exp.logits_last_head[b].forEach((want, j) => vsMain.fast.add(`${label} row ${b} logits_last[${j}]`, lastFast[j], want));
    vsMain.fast.add(`${label} row ${b} logsumexp`, logSumExp(lastFast), exp.logsumexp_last[b]);
    for (let j = 0; j < V; j++) consistency.logits_last.add(`${label} row ${b} logits_last[${j}] vs logits`, lastFast[j], last[j]);
    for (let t = 0; t < s - 1; t++) {
      const want = exp.token_logprobs[b][t];
      if (want === null) continue;
      const got = outFast.token_logprobs.data[b * (s - 1) + t];
      vsMain.fast.add(`${label} row ${b} token_logprobs[${t}]`, got, want);
      consistency.token_logprobs.add(`${label} row ${b} token_logprobs[${t}] vs log_softmax(logits)`, got, logSoftmaxAt(rowAt(b, t), step.input_ids[b][t + 1]));
    }
  }
  if (!outFast) return undefined;
  if (outFast.token_logprobs.dims.join() !== `2,${s - 1}`) throw new Error(`token_logprobs has shape ${outFast.token_logprobs.dims}, want [2, ${s - 1}]`);
  // Generation mode (n = 0) and a one-token tail give the same numbers where they overlap.
  const gen = await fast.run({ ...fastFeeds, ...num(0) }, ['logits_last', 'token_logprobs']);
  if (gen.token_logprobs.dims.join() !== '2,0') throw new Error(`with num_logprobs 0, token_logprobs has shape ${gen.token_logprobs.dims}, want [2, 0]`);
  for (let j = 0; j < 2 * V; j++) consistency.logits_last.add(`${label} logits_last[${j}] with num_logprobs 0 vs s-1`, gen.logits_last.data[j], outFast.logits_last.data[j]);
  if (consistency.probs_last) {
    // The sampling distribution at temperature 0.7, as generation asks for it (num_logprobs 0).
    const invT = 1 / 0.7;
    const p = await fast.run({ ...fastFeeds, ...num(0, invT) }, ['probs_last']);
    for (let b = 0; b < 2; b++) {
      const want = softmaxScaled(gen.logits_last.data.subarray(b * V, (b + 1) * V), invT);
      for (let j = 0; j < V; j++) consistency.probs_last.add(`${label} row ${b} probs_last[${j}] at T 0.7 vs softmax(logits_last / 0.7)`, p.probs_last.data[b * V + j], want[j]);
    }
    if (consistency.token_sampled) {
      for (const us of UNIFORMS) {
        const d = await fast.run({ ...fastFeeds, ...num(0, invT), sample_uniform: new ort.Tensor('float64', Float64Array.from(us), [2]) }, ['token_sampled']);
        for (let b = 0; b < 2; b++) {
          const got = Number(d.token_sampled.data[b]);
          const probs = p.probs_last.data.subarray(b * V, (b + 1) * V);
          const want = drawAt(probs, us[b]);
          // Another token only within float32 rounding of the boundary between them.
          consistency.token_sampled.add(`${label} row ${b} token_sampled at T 0.7, u ${us[b]}, vs the draw from probs_last`, got !== want && drawnNear(probs, us[b], got) ? want : got, want);
        }
      }
    }
  }
  if (s > 1) {
    const one = await fast.run({ ...fastFeeds, ...num(1) }, ['token_logprobs']);
    for (let b = 0; b < 2; b++) {
      consistency.token_logprobs.add(`${label} row ${b} token_logprobs with num_logprobs 1 vs s-1`, one.token_logprobs.data[b], outFast.token_logprobs.data[b * (s - 1) + s - 2]);
    }
  }
  return outFast;
}

/**
 * model.onnx over parity.json's steps (feeding its presents back), then its `shared` steps: the
 * prefix run once (batch 1) and copied into every row's past. Returns every output, so that the
 * session can be released before the fast graph loads.
 */
async function runMain(parity, main, layers) {
  // Each step's presents are the next step's past (exports without position_ids derive positions from the mask).
  const chain = async (steps, past) => {
    const outs = [];
    for (const step of steps) {
      const feeds = { input_ids: i64(step.input_ids), attention_mask: i64(step.attention_mask) };
      if (main.inputNames.includes('position_ids')) feeds.position_ids = i64(step.position_ids);
      const out = await main.run({ ...feeds, ...past });
      outs.push(out);
      past = {};
      for (const name of layers) past[name.replace('present.', 'past_key_values.')] = out[name];
    }
    return outs;
  };
  const steps = await chain(parity.steps, emptyPast(main, 2));
  if (!parity.shared) return { steps };
  const ids = parity.shared.shared_ids;
  const S = ids[0].length;
  const pre = await main.run({
    input_ids: i64(ids),
    attention_mask: i64([new Array(S).fill(1)]),
    ...(main.inputNames.includes('position_ids') ? { position_ids: i64([ids[0].map((_, t) => t)]) } : {}),
    ...emptyPast(main, 1),
  });
  const past = {};
  for (const name of layers) past[name.replace('present.', 'past_key_values.')] = repeatRows(pre[name], 2);
  return { steps, shared: { pre, steps: await chain(parity.shared.steps, past) } };
}

/**
 * parity.json's `shared` steps on the fast graph: a prefix common to both rows (model.onnx's
 * presents of it, `pre`), taken once ([1, H, S, D]) by a fast graph with shared_key_values.*
 * inputs, and the rows' own past separately. Each step is compared with the PyTorch reference (one
 * plain forward over the whole sequence), and with model.onnx's outputs of the same step (the
 * prefix copied into every row's past).
 */
async function checkShared(parity, mainOut, fast, layers, vsMain, consistency, report) {
  const fastShared = fast !== undefined && hasShared(fast);
  report.shared = { fastGraph: fastShared, steps: parity.shared.steps.length };
  let pastFast = fastShared ? emptyPast(fast, 2) : {};
  if (fastShared) for (const name of layers) pastFast[name.replace('present.', 'shared_key_values.')] = mainOut.pre[name];
  for (const [k, step] of parity.shared.steps.entries()) {
    const feeds = { input_ids: i64(step.input_ids), attention_mask: i64(step.attention_mask) };
    if (fast?.inputNames.includes('position_ids') ?? true) feeds.position_ids = i64(step.position_ids);
    const s = step.input_ids[0].length;
    const outMain = mainOut.steps[k];
    const outFast = await compareStep(`shared step ${k}`, step, outMain, fastShared ? fast : undefined, { ...feeds, ...pastFast }, vsMain, consistency);
    if (outFast) pastFast = checkNewKv(`shared step ${k}`, layers, outMain, outFast, s, pastFast, pastFast, consistency);
  }
}

/**
 * The fast graph's new_key_values.* against the tail of model.onnx's present.*; returns `next` with
 * each layer's past grown by the new entries (the fast graph's next feeds).
 */
function checkNewKv(label, layers, outMain, outFast, s, pastFast, next, consistency) {
  for (const name of layers) {
    const pastName = name.replace('present.', 'past_key_values.');
    const newName = name.replace('present.', 'new_key_values.');
    const tail = tailKv(outMain[name], s);
    const out = outFast[newName];
    if (out.dims.join() !== tail.dims.join()) throw new Error(`${newName} has shape ${out.dims}, want ${tail.dims}`);
    for (let j = 0; j < tail.data.length; j++) consistency.new_key_values.add(`${label} ${newName}[${j}]`, valueAt(out, j), valueAt(tail, j));
    next[pastName] = concatKv(pastFast[pastName], out);
  }
  return next;
}

/**
 * Run model.onnx and then model.fast.onnx of `modelDir` on parity.json's steps (and its `shared`
 * steps, when recorded), feeding the KV cache back for the cached steps. One session at a time.
 * A quantized folder's parity.json says what its reference is (`quantization.reference`):
 * "dequantized" (export-gptj.py --quantize: PyTorch with the same quantized weights, checked within
 * the recorded tolerance) or "unquantized" (quantize-model.py on an export: the original model's
 * outputs, reported as `graphs.*.maxAbsDiff` but not failed on; the graphs are still checked
 * against each other).
 * @returns report with per-graph max |diff|, counts, failures and an `ok` flag.
 */
export async function checkParity(modelDir, { threads = 1 } = {}) {
  // transformers.js layout (onnx/model.onnx) or optimum-cli's (model.onnx at the top).
  const onnxDir = existsSync(join(modelDir, 'onnx', 'model.onnx')) ? join(modelDir, 'onnx') : modelDir;
  for (const f of ['model.onnx', 'model.fast.onnx', 'parity.json'])
    if (!existsSync(join(onnxDir, f))) throw new Error(`${join(onnxDir, f)} not found (export with scripts/export-gptj.py, or run scripts/add-fast-graphs.py)`);
  const parity = JSON.parse(readFileSync(join(onnxDir, 'parity.json'), 'utf8'));
  const opts = { intraOpNumThreads: threads, interOpNumThreads: 1 };
  const quant = parity.quantization;
  const informational = quant?.reference === 'unquantized';
  const tol = parity.tolerance;
  // Fast graph vs model.onnx: the same math, only kernel order differs. fp16 rounds each MatMul
  // output: allow ~2 ulps. Activations quantized to int8 (MatMulNBits at accuracy_level 4,
  // DynamicQuantizeMatMul) turn a last-bit difference into a whole int8 step wherever a value lies on
  // a rounding boundary, and deep models compound such steps: the two graphs then differ by what
  // each differs from the reference (the 24-layer 1.4B shape: 0.06 on logits near 1).
  const int8Activations = quant && (quant.op === 'DynamicQuantizeMatMul' || (quant.accuracy_level ?? 0) !== 0);
  const tight = int8Activations ? ACTIVATION_ROUNDING : parity.dtype === 'fp16' ? { atol: 5e-3, rtol: 5e-3 } : { atol: 1e-5, rtol: 1e-5 };
  const report = { dtype: parity.dtype, tolerance: tol, graphs: {}, consistency: {}, ok: true };
  if (quant) report.quantization = quant;
  // Against an unquantized reference, differences are expected: measured, never failed on.
  const refTol = informational ? { atol: Infinity, rtol: Infinity } : tol;
  const vsMain = { main: new Diff(refTol), fast: new Diff(refTol) };
  const consistency = { logits_last: new Diff(tight), token_logprobs: new Diff(tight), new_key_values: new Diff(tight) };

  let main = await ort.InferenceSession.create(join(onnxDir, 'model.onnx'), opts);
  const layers = main.outputNames.filter((n) => n.startsWith('present.'));
  const mainOut = await runMain(parity, main, layers);
  await main.release();
  main = undefined;

  const fast = await ort.InferenceSession.create(join(onnxDir, 'model.fast.onnx'), opts);
  // Fast graphs from before probs_last have none (scripts/add-fast-graphs.py adds it).
  if (fast.outputNames.includes('probs_last')) consistency.probs_last = new Diff(tight);
  // Nor those from before token_sampled; a drawn token must be the reference draw's, or its
  // neighbour within float32 rounding of the boundary (drawnNear).
  if (fast.outputNames.includes('token_sampled')) consistency.token_sampled = new Diff({ atol: 0, rtol: 0 });
  try {
    let pastFast = emptyPast(fast, 2);
    for (const [k, step] of parity.steps.entries()) {
      const feeds = { input_ids: i64(step.input_ids), attention_mask: i64(step.attention_mask) };
      if (fast.inputNames.includes('position_ids')) feeds.position_ids = i64(step.position_ids);
      const s = step.input_ids[0].length;
      const outMain = mainOut.steps[k];
      const outFast = await compareStep(`step ${k}`, step, outMain, fast, { ...feeds, ...pastFast }, vsMain, consistency);
      // The next feeds: zero-length shared_key_values.* (when the graph has them) and the grown past.
      pastFast = checkNewKv(`step ${k}`, layers, outMain, outFast, s, pastFast, emptyPast(fast, 2), consistency);
    }
    if (parity.shared) await checkShared(parity, mainOut.shared, fast, layers, vsMain, consistency, report);
  } finally {
    await fast.release();
  }
  for (const [g, d] of Object.entries(vsMain)) {
    report.graphs[g] = { maxAbsDiff: d.max, compared: d.count, failures: d.failures.slice(0, 10) };
    if (d.failures.length) report.ok = false;
  }
  for (const [g, d] of Object.entries(consistency)) {
    report.consistency[g] = { maxAbsDiff: d.max, compared: d.count, failures: d.failures.slice(0, 10) };
    if (d.failures.length) report.ok = false;
  }
  return report;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const dir = process.argv[2];
  if (!dir || dir === '--help' || dir === '-h') {
    console.log('usage: node scripts/check-parity.mjs MODEL_DIR\n  checks MODEL_DIR/onnx/model.onnx and model.fast.onnx against MODEL_DIR/onnx/parity.json, one graph loaded at a time');
    process.exit(dir ? 0 : 2);
  }
  let report;
  try {
    report = await checkParity(dir, { threads: Number(process.env.UIT_THREADS ?? 2) });
  } catch (e) {
    console.error(`check-parity: ${e instanceof Error ? e.message : e}`);
    process.exit(2);
  }
  console.log(JSON.stringify(report, null, 2));
  process.exit(report.ok ? 0 : 1);
}
