// Quantized model folders (scripts/quantize-model.py on the committed fixture), checked from Node:
// - every MatMulNBits against a numpy dequantize-and-matmul reference (scripts/tests/nbits_reference.py
//   unpacks B, scales and zero points from the operator's spec, independently of scripts/nbits.py, and
//   checks the dequantized weights against the unquantized ones), exactly at accuracy_level 0 and
//   within the int8-activation error at the folder's level 4;
// - the int4 fast graph against the int4 model.onnx (check-parity's consistency), the shared-prefix
//   path against the copy path, and the in-graph draw against the JavaScript one;
// - the folders keep every input and output, and a quantized folder has its own identity.
// Needs Debian's /usr/bin/python3 with onnx and numpy: skipped with the reason when missing, a failure
// when UIT_REQUIRE_SYSTEM_DEPS=1.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkParity } from '../../scripts/check-parity.mjs';
import { generate, loadModel, modelIdentity, inspectModelFolder, prefill, scoreContinuations, type Model } from '../../src/runtime/index.js';
import { FIXTURE, maxAbsDiff, tempDir } from '../runtime/helpers.js';

const PY = process.env.UIT_PYTHON ?? '/usr/bin/python3';
const REQUIRE = process.env.UIT_REQUIRE_SYSTEM_DEPS === '1';

function probe(): string | null {
  const r = spawnSync(PY, ['-c', 'import onnx, numpy'], { encoding: 'utf8' });
  return r.status === 0 ? null : `${PY} cannot import onnx and numpy: ${(r.stderr || String(r.error)).trim().split('\n').pop()}`;
}
const missing = probe();
const suite = missing && !REQUIRE ? describe.skip : describe;

function py(args: string[]): string {
  const r = spawnSync(PY, args, { encoding: 'utf8', timeout: 300_000 });
  if (r.status !== 0) throw new Error(`${PY} ${args.join(' ')} failed (${r.status}):\n${r.stderr}`);
  return r.stdout;
}

const VARIANTS: Record<string, string[]> = {
  int4: ['--quantize', 'int4'],
  'int4-asym-16': ['--quantize', 'int4', '--asym', '--block-size', '16'],
  'int8-nbits': ['--quantize', 'int8', '--int8-op', 'nbits', '--lm-head'],
  'int8-dynamic': ['--quantize', 'int8'],
};

suite(`quantized folders${missing ? ` (${REQUIRE ? 'required, missing' : 'skipped'}: ${missing})` : ''}`, { timeout: 300_000 }, () => {
  const tmp = tempDir('uit-quantize-');
  const dirs: Record<string, string> = {};
  afterAll(() => tmp.cleanup());
  beforeAll(() => {
    for (const [name, args] of Object.entries(VARIANTS)) {
      dirs[name] = join(tmp.dir, name);
      py(['scripts/quantize-model.py', FIXTURE, dirs[name], ...args]);
    }
  });

  it('has onnx and numpy in the Python', () => {
    expect(missing).toBeNull();
  });

  for (const name of ['int4', 'int4-asym-16', 'int8-nbits']) {
    it(`${name}: every MatMulNBits equals the numpy dequantize-and-matmul reference`, async () => {
      const out = join(tmp.dir, `${name}-cases`);
      py(['scripts/tests/nbits_reference.py', dirs[name], FIXTURE, out]);
      const cases = JSON.parse(readFileSync(join(out, 'cases.json'), 'utf8')) as {
        file: string;
        K: number;
        N: number;
        bits: number;
        accuracy_level: number;
        asymmetric: boolean;
        max_error_steps: number;
        mean_error_steps: number;
        x: number[];
        y: number[];
      }[];
      // 6 linear layers in each of the 2 blocks (the LM head too with --lm-head), each at level 0 and 4.
      expect(cases.length).toBe(name === 'int8-nbits' ? 26 : 24);
      expect(cases.every((c) => c.bits === (name.startsWith('int8') ? 8 : 4))).toBe(true);
      expect(cases.some((c) => c.asymmetric)).toBe(name === 'int4-asym-16');
      for (const c of cases) {
        // The codes stand for the unquantized weights: round to nearest (half a step on average a
        // quarter), a whole step only where a symmetric block clamps its largest positive value.
        expect(c.max_error_steps, c.file).toBeLessThanOrEqual(1 + 1e-6);
        expect(c.mean_error_steps, c.file).toBeLessThan(0.3);
        const s = await ort.InferenceSession.create(c.file, { intraOpNumThreads: 1 });
        const { y } = await s.run({ x: new ort.Tensor('float32', Float32Array.from(c.x), [3, c.K]) });
        await s.release();
        const scale = Math.max(...c.y.map(Math.abs));
        const err = maxAbsDiff(y.data as Float32Array, c.y) / scale;
        // Level 0 computes in float32 with the dequantized weights; level 4 rounds the activations
        // to int8 per block (about 1% of the largest output here).
        expect(err, `${c.file} (K ${c.K}, N ${c.N}, level ${c.accuracy_level})`).toBeLessThan(c.accuracy_level === 0 ? 1e-5 : 3e-2);
      }
    });
  }

  it('keeps every input and output of both graphs, and records the quantization in config.json', async () => {
    for (const graph of ['model.onnx', 'model.fast.onnx']) {
      const a = await ort.InferenceSession.create(join(FIXTURE, 'onnx', graph));
      for (const dir of Object.values(dirs)) {
        const b = await ort.InferenceSession.create(join(dir, 'onnx', graph));
        expect(b.inputNames).toEqual(a.inputNames);
        expect(b.outputNames).toEqual(a.outputNames);
        await b.release();
      }
      await a.release();
    }
    const cfg = JSON.parse(readFileSync(join(dirs.int4, 'config.json'), 'utf8'));
    expect(cfg.uit_quantization).toEqual({ scheme: 'int4', op: 'MatMulNBits', lm_head: false, embeddings: false, bits: 4, block_size: 32, symmetric: true, accuracy_level: 4 });
    expect(JSON.parse(readFileSync(join(dirs['int8-dynamic'], 'config.json'), 'utf8')).uit_quantization.op).toBe('DynamicQuantizeMatMul');
  });

  for (const name of Object.keys(VARIANTS)) {
    it(`${name}: the fast graph's outputs match model.onnx's (check-parity), and the distance to the unquantized model is reported`, async () => {
      const report = await checkParity(dirs[name]);
      for (const d of Object.values(report.consistency)) expect(d.failures).toEqual([]);
      expect(report.consistency.logits_last.compared).toBeGreaterThan(1000);
      expect(report.consistency.token_sampled!.compared).toBe(36);
      expect(report.quantization?.reference).toBe('unquantized');
      // Measured, not failed on: quantization moves the logits, and not by nothing.
      expect(report.graphs.main.failures).toEqual([]);
      expect(report.graphs.main.maxAbsDiff).toBeGreaterThan(1e-3);
      expect(report.ok).toBe(true);
    });
  }

  describe('the int4 folder in the runtime', () => {
    let shared: Model;
    let copies: Model;
    beforeAll(async () => {
      shared = await loadModel(dirs.int4, { threads: 1 });
      copies = await loadModel(dirs.int4, { threads: 1, sharedKv: false });
    });
    afterAll(async () => {
      await shared?.dispose();
      await copies?.dispose();
    });

    it('reuses a scored prefix: the shared-prefix path gives the copy path numbers', async () => {
      expect(shared.info.sharedKv).toBe(true);
      const tok = shared.tokenizer;
      const prefixIds = tok.encode('Definition: Answer the question.\n\nInput: ');
      const conts = ['What is 2+2?\nOutput: 4', 'Hi\nOutput: hello there', 'x', 'A longer one, with commas?\nOutput: no'].map((t) => tok.encode(t));
      const viaShared = await scoreContinuations(shared.backend, await prefill(shared.backend, prefixIds), conts, { batchSize: 2 });
      const viaCopies = await scoreContinuations(copies.backend, await prefill(copies.backend, prefixIds), conts, { batchSize: 2 });
      // Rows are quantized per block of their own: the int8 activations round the same both ways
      // up to kernel order.
      for (const [i, c] of conts.entries()) {
        expect(viaShared[i].length).toBe(c.length);
        expect(maxAbsDiff(viaShared[i], viaCopies[i]), `continuation ${i}`).toBeLessThan(5e-3);
      }
    });

    it('samples in the graph: N samples of one prompt are the JavaScript draw, and the copy path', async () => {
      expect(shared.info.graphSampling).toBe(true);
      const js = await loadModel(dirs.int4, { threads: 1, graphSampling: false });
      try {
        const requests = [{ prompt: 'Definition: In this task, you are given a question.', numSamples: 4 }, { prompt: 'Input: x', numSamples: 2 }];
        const opts = { maxNewTokens: 12, temperature: 0.8, seed: 5 };
        const ids = (r: Awaited<ReturnType<typeof generate>>) => r.outputs.map((o) => o.samples.map((s) => s.tokenIds));
        const inGraph = ids(await generate(shared, requests, opts));
        expect(inGraph).toEqual(ids(await generate(js, requests, opts)));
        expect(inGraph).toEqual(ids(await generate(copies, requests, opts)));
        expect(new Set(inGraph.flat().map((s) => s.join())).size).toBeGreaterThan(3);
      } finally {
        await js.dispose();
      }
    });
  });

  it('gives a quantized folder its own identity, so cached scores never mix', async () => {
    const memoFile = join(tmp.dir, 'identity.json');
    const base = await modelIdentity(inspectModelFolder(FIXTURE), { memoFile });
    const ids = await Promise.all(Object.values(dirs).map((d) => modelIdentity(inspectModelFolder(d), { memoFile })));
    expect(new Set([base, ...ids]).size).toBe(1 + ids.length);
  });
});
