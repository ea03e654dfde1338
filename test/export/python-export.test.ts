// Fresh exports made by the Python scripts during the test, checked from Node with
// onnxruntime-node against the PyTorch outputs they record (parity.json):
// - a random GPT-J of a shape no other test uses (3 heads, rotary over the whole head,
//   padded vocabulary, odd MLP width), fp32 at opset 14 and fp16 at the default opset;
// - two decoders NOT made by export-gptj.py (Llama-like with grouped-query attention and
//   per-tensor external files; GPT-2-like with a tied head, weights embedded, no
//   position_ids input, model.onnx at the top as optimum-cli writes it), through
//   scripts/add-fast-graphs.py.
// Needs Debian's /usr/bin/python3 with torch and onnx: skipped with the reason when they
// are missing, a failure when UIT_REQUIRE_SYSTEM_DEPS=1.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { AutoModelForCausalLM, AutoTokenizer, env } from '@huggingface/transformers';
import { afterAll, describe, expect, it } from 'vitest';
import { checkParity } from '../../scripts/check-parity.mjs';

const PY = process.env.UIT_PYTHON ?? '/usr/bin/python3'; // Debian's python3 with torch and onnx
const SCRIPTS = fileURLToPath(new URL('../../scripts/', import.meta.url));
const REQUIRE = process.env.UIT_REQUIRE_SYSTEM_DEPS === '1';

function probe(): string | null {
  if (!existsSync(PY)) return `${PY} not found`;
  const r = spawnSync(PY, ['-c', 'import torch, onnx'], { encoding: 'utf8' });
  return r.status === 0 ? null : `${PY} cannot import torch and onnx: ${(r.stderr || '').trim().split('\n').pop()}`;
}

const missing = probe();
const tmp = mkdtempSync(join(tmpdir(), 'uit-export-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function py(args: string[]): string {
  const r = spawnSync(PY, args, {
    encoding: 'utf8',
    env: { ...process.env, UIT_TORCH_THREADS: '2', OMP_NUM_THREADS: '2' },
    timeout: 300_000,
  });
  if (r.status !== 0) throw new Error(`${PY} ${args.join(' ')} failed (${r.status}):\n${r.stderr}`);
  return r.stdout;
}

const SHAPE = {
  model_type: 'gptj',
  vocab_size: 300, // a padded vocabulary, as GPT-J's 50400 for 50257 tokens
  n_positions: 96,
  n_embd: 48,
  n_layer: 3,
  n_head: 3,
  rotary_dim: 16, // = head_dim: no pass-through dims
  n_inner: 100,
  activation_function: 'gelu_new',
  layer_norm_epsilon: 1e-5,
  initializer_range: 0.15,
  bos_token_id: 256,
  eos_token_id: 256,
  tie_word_embeddings: false,
};

function expectParity(report: Awaited<ReturnType<typeof checkParity>>) {
  for (const d of [...Object.values(report.graphs), ...Object.values(report.consistency)]) expect(d.failures).toEqual([]);
  expect(report.graphs.main.compared).toBeGreaterThan(300);
  expect(report.ok).toBe(true);
}

const suite = missing && !REQUIRE ? describe.skip : describe;

// Exports run PyTorch on a shared 2-core box: allow more than the default 120 s per test.
suite(`Python exports checked from Node${missing ? ` (${REQUIRE ? 'required, missing' : 'skipped'}: ${missing})` : ''}`, { timeout: 300_000 }, () => {
  it(`has torch and onnx in ${PY}`, () => {
    expect(missing).toBeNull();
  });

  it('exports a fresh random GPT-J (fp32, opset 14) that matches PyTorch', async () => {
    const cfg = join(tmp, 'shape.json');
    writeFileSync(cfg, JSON.stringify(SHAPE));
    const out = join(tmp, 'fresh-fp32');
    py([join(SCRIPTS, 'export-gptj.py'), '--random-init', cfg, out, '--seed', '11', '--opset', '14']);
    const report = await checkParity(out);
    expectParity(report);
    expect(report.graphs.main.maxAbsDiff).toBeLessThan(1e-4);
    const parity = JSON.parse(readFileSync(join(out, 'onnx', 'parity.json'), 'utf8'));
    expect(parity.model).toEqual({ n_layer: 3, n_head: 3, head_dim: 16, vocab_size: 300 });
    expect(parity.steps.map((s: { input_ids: number[][] }) => s.input_ids[0].length)).toEqual([7, 1, 1, 3]);
  });

  it('exports the same shape quantized on the fly (int4 linear layers and embedding): equal to PyTorch with the dequantized weights', async () => {
    // accuracy_level 0 computes in float32 with the dequantized weights, so the reference (the same
    // model with its weights quantized and dequantized in numpy) holds at the float32 tolerance: the
    // whole graph, MatMulNBits and GatherBlockQuantized included, means what the weights say.
    const out = join(tmp, 'fresh-int4');
    py([join(SCRIPTS, 'export-gptj.py'), '--random-init', join(tmp, 'shape.json'), out, '--seed', '11', '--quantize', 'int4', '--block-size', '16', '--asym', '--embeddings', '--lm-head', '--accuracy-level', '0']);
    const report = await checkParity(out);
    expectParity(report);
    expect(report.tolerance).toEqual({ atol: 1e-4, rtol: 1e-4 });
    expect(report.quantization).toMatchObject({ scheme: 'int4', reference: 'dequantized', embeddings: true, lm_head: true });
    const ops = readFileSync(join(out, 'onnx', 'model.fast.onnx')).toString('latin1');
    expect(ops).toContain('MatMulNBits');
    expect(ops).toContain('GatherBlockQuantized');
  });

  it('exports the same shape in fp16: float16 weights and KV cache, float32 logits, close to PyTorch', async () => {
    const out = join(tmp, 'fresh-fp16');
    py([join(SCRIPTS, 'export-gptj.py'), '--random-init', join(tmp, 'shape.json'), out, '--seed', '11', '--dtype', 'fp16']);
    const report = await checkParity(out);
    expectParity(report);
    const s = await ort.InferenceSession.create(join(out, 'onnx', 'model.fast.onnx'));
    const meta = (name: string) => [...s.inputMetadata, ...s.outputMetadata].find((m) => m.name === name) as { type: string };
    expect(meta('past_key_values.0.key').type).toBe('float16');
    expect(meta('new_key_values.2.value').type).toBe('float16');
    expect(meta('logits_last').type).toBe('float32');
    expect(meta('token_logprobs').type).toBe('float32');
    expect(meta('shared_key_values.1.value').type).toBe('float16');
    await s.release();
    // transformers.js loads it with its default options (the KV dtype comes from the graph).
    env.allowRemoteModels = false;
    env.allowLocalModels = true;
    env.localModelPath = tmp;
    const tokenizer = await AutoTokenizer.from_pretrained('fresh-fp16', { local_files_only: true });
    const model = await AutoModelForCausalLM.from_pretrained('fresh-fp16', { device: 'cpu', local_files_only: true });
    const inputs = tokenizer('Input: x');
    const generated = (await model.generate({ ...inputs, max_new_tokens: 4, do_sample: false })) as { dims: number[] };
    expect(generated.dims[1]).toBeGreaterThan(8);
    await model.dispose();
    const fp32 = readFileSync(join(tmp, 'fresh-fp32', 'onnx', 'model.onnx_data')).length;
    const fp16 = readFileSync(join(out, 'onnx', 'model.onnx_data')).length;
    expect(fp16).toBeLessThan(fp32 * 0.6);
  });

  it.each(['llama', 'gpt2'])('adds the fast graph to a %s-like export not made by export-gptj.py', async (kind) => {
    const out = join(tmp, `foreign-${kind}`);
    const onnxDir = py([join(SCRIPTS, 'tests', 'foreign_decoder.py'), kind, out]).trim().split('\n').pop() as string;
    const before = readdirSync(onnxDir);
    if (kind === 'llama') expect(before.length).toBeGreaterThan(5); // one file per tensor
    if (kind === 'gpt2') expect(before).not.toContain('model.onnx_data'); // weights embedded
    py([join(SCRIPTS, 'add-fast-graphs.py'), out]);
    expect(readdirSync(onnxDir).filter((f) => f !== 'config.json').sort()).toEqual(['model.fast.onnx', 'model.onnx', 'model.onnx_data', 'parity.json']);
    expectParity(await checkParity(out));
  });

  it.each(['llama', 'gpt2'])('quantizes the %s-like export to int4 (its hidden size read from its embedding): both graphs run and agree', async (kind) => {
    // The folders of the test above: optimum's names, no hidden size in config.json, gpt2's tied
    // head a transposed copy of the embedding, its graphs at the top of the folder.
    const src = join(tmp, `foreign-${kind}`);
    const out = join(tmp, `foreign-${kind}-int4`);
    const log = py([join(SCRIPTS, 'quantize-model.py'), src, out, '--quantize', 'int4', '--block-size', '16', '--embeddings']);
    // every linear layer (fused qkv, out, MLP) and the embedding; the LM head left as it was
    expect(log).toMatch(kind === 'llama' ? /model\.fast\.onnx: 15 weights to MatMulNBits int4; left as they were: 1 \(.*the LM head/ : /model\.fast\.onnx: 10 weights to MatMulNBits int4; left as they were: 1 \(.*the LM head/);
    expect(readdirSync(out).sort()).toEqual(['config.json', 'onnx']);
    const report = await checkParity(out);
    expect(report.quantization?.reference).toBe('unquantized');
    for (const d of Object.values(report.consistency)) expect(d.failures).toEqual([]);
    expect(report.ok).toBe(true);
  });
});
