// `uit generate` and `uit doctor` through the real binary (bin/uit.js -> dist/).
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generate, loadModel, providerReport, type Model } from '../../src/runtime/index.js';
import { FIXTURE, tempDir } from './helpers.js';

function uit(...args: string[]) {
  const r = spawnSync(process.execPath, ['bin/uit.js', ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

let model: Model;
const tmp = tempDir('uit-cli-generate-');
beforeAll(async () => {
  for (const cmd of ['generate', 'doctor']) {
    const built = `dist/commands/${cmd}.js`;
    if (!existsSync(built) || statSync(built).mtimeMs < statSync(`src/commands/${cmd}.ts`).mtimeMs) {
      throw new Error(`${built} is missing or older than its source: run \`npm run build\` first (npm test does)`);
    }
  }
  model = await loadModel(FIXTURE, { threads: 1 });
});
afterAll(async () => {
  await model.dispose();
  tmp.cleanup();
});

describe('uit generate', () => {
  it('prints only the generated text (no prompt echo), the same as the API', async () => {
    const r = uit('generate', '--model', FIXTURE, '--greedy', '-n', '8', '--threads', '1', 'Hello', 'world');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const api = await generate(model, [{ prompt: 'Hello world' }], { maxNewTokens: 8, greedy: true });
    expect(r.stdout).toBe(`${api.outputs[0].samples[0].text}\n`);
  });

  it('--input JSONL with samples and --json gives structured results equal to the API', async () => {
    const input = join(tmp.dir, 'prompts.jsonl');
    writeFileSync(input, '{"prompt": "Definition: "}\n\n{"prompt": "Input: 2+2", "num_samples": 3}\n');
    const r = uit('generate', '-m', FIXTURE, '-i', input, '--num-samples', '2', '-t', '0.8', '--top-k', '40', '--seed', '3', '-n', '6', '--json');
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as {
      model: { fast_generation: boolean };
      results: { prompt_index: number; sample_index: number; text: string; tokens: number[]; finish_reason: string }[];
      timings: { new_tokens: number; prompt_tokens: number };
    };
    expect(Object.keys(doc)).toEqual(['model', 'results', 'timings']);
    expect(doc.model.fast_generation).toBe(true);
    expect(doc.results.map((x) => [x.prompt_index, x.sample_index])).toEqual([[0, 0], [0, 1], [1, 0], [1, 1], [1, 2]]);
    const api = await generate(model, [{ prompt: 'Definition: ', numSamples: 2 }, { prompt: 'Input: 2+2', numSamples: 3 }], {
      maxNewTokens: 6,
      temperature: 0.8,
      topK: 40,
      seed: 3,
    });
    expect(doc.results.map((x) => x.tokens)).toEqual(api.outputs.flatMap((o) => o.samples.map((s) => s.tokenIds)));
    expect(doc.results.map((x) => x.text)).toEqual(api.outputs.flatMap((o) => o.samples.map((s) => s.text)));
    expect(doc.results.every((x) => x.finish_reason === 'length')).toBe(true);
    expect(doc.timings.new_tokens).toBe(30);
  });

  it('a temperature too small to compute prints the greedy text, not `!!!!!!!!` (issue 21)', () => {
    const run = (...opts: string[]) => uit('generate', '-m', 'models/uit-tiny', ...opts, '--max-new-tokens', '8', '--seed', '1', 'Hi');
    const greedy = run('--greedy');
    expect(greedy.code).toBe(0);
    expect(greedy.stdout).not.toMatch(/^!+\n$/);
    for (const t of ['1e-40', '1e-300', '0']) expect(run('--temperature', t)).toEqual(greedy);
  });

  it('--draft-tokens: prompt lookup gives the same greedy text in fewer forwards; 0 turns it off', () => {
    const run = (...extra: string[]) => {
      const r = uit('generate', '-m', FIXTURE, '--greedy', '-n', '40', '--threads', '1', '--json', ...extra, 'abc abc abc abc abc');
      expect(r.code).toBe(0);
      return JSON.parse(r.stdout) as { results: { tokens: number[] }[]; timings: { decode_forwards: number; drafted_tokens: number; accepted_drafts: number } };
    };
    const on = run();
    const off = run('--draft-tokens', '0');
    expect(on.results).toEqual(off.results);
    expect(off.timings).toMatchObject({ decode_forwards: 39, drafted_tokens: 0, accepted_drafts: 0 });
    expect(on.timings.accepted_drafts).toBeGreaterThan(0);
    expect(on.timings.decode_forwards).toBe(39 - on.timings.accepted_drafts);
    const bad = uit('generate', '-m', FIXTURE, '--draft-tokens', '-1', 'x');
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/--draft-tokens/);
  });

  it('separates several plain outputs and writes -o files', () => {
    const out = join(tmp.dir, 'sub', 'out.txt');
    const r = uit('generate', '-m', FIXTURE, '--num-samples', '2', '-n', '4', '--stop', '\\n', '-o', out, 'abc');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
    expect(readFileSync(out, 'utf8').split('----\n')).toHaveLength(2);
  });

  it('reports a bad JSONL line with file:line and exit code 3', () => {
    const input = join(tmp.dir, 'bad.jsonl');
    writeFileSync(input, '{"prompt": "ok"}\n{"text": "no prompt"}\n');
    const r = uit('generate', '-m', FIXTURE, '-i', input);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`${input}:2: prompt:`);
  });

  it('exits 4 with a clear message for a missing model folder', () => {
    const r = uit('generate', '-m', join(tmp.dir, 'missing'), 'x');
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/model folder .*missing does not exist/);
  });

  it.skipIf(providerReport().cuda.installed)('exits 4 and says what to install for --device cuda', () => {
    const r = uit('generate', '-m', FIXTURE, '--device', 'cuda', 'x');
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/CUDA/);
  });

  it('rejects bad option values with a usage error', () => {
    expect(uit('generate', '-m', FIXTURE, '--top-p', '1.5', 'x').code).toBe(2);
    expect(uit('generate', '-m', FIXTURE, '-n', '0', 'x').code).toBe(2);
    expect(uit('generate', '-m', FIXTURE).code).toBe(2);
    expect(uit('generate', '--help').stdout).toContain('Examples:');
  });
});

/** A minimal ONNX ModelProto (protobuf wire format) whose one MatMul weight lives in external data. */
function hugeGraph(): Buffer {
  const varint = (n: number) => {
    const out: number[] = [];
    while (n >= 0x80) {
      out.push((n % 0x80) | 0x80);
      n = Math.floor(n / 0x80);
    }
    out.push(n);
    return Buffer.from(out);
  };
  const key = (field: number, wire: number) => varint(field * 8 + wire);
  const int = (field: number, n: number) => Buffer.concat([key(field, 0), varint(n)]);
  const bytes = (field: number, b: Buffer) => Buffer.concat([key(field, 2), varint(b.length), b]);
  const str = (field: number, s: string) => bytes(field, Buffer.from(s));
  const entry = (k: string, v: string) => bytes(13, Buffer.concat([str(1, k), str(2, v)]));
  const FLOAT16 = 10;
  const tensor = Buffer.concat([int(1, 2 ** 20), int(1, 2 ** 19), int(2, FLOAT16), str(8, 'w'), entry('location', 'model.onnx_data'), entry('length', String(2 ** 40)), int(14, 1)]);
  const valueInfo = (name: string) => bytes(1, Buffer.from(name)); // name only: never loaded
  const node = Buffer.concat([str(1, 'x'), str(1, 'w'), str(2, 'y'), str(4, 'MatMul')]);
  const graph = Buffer.concat([bytes(1, node), str(2, 'huge'), bytes(5, tensor), bytes(11, valueInfo('x')), bytes(12, valueInfo('y'))]);
  return Buffer.concat([int(1, 8), bytes(7, graph), bytes(8, int(2, 17))]);
}

describe('uit doctor', () => {
  it('reports onnxruntime and providers', () => {
    const r = uit('doctor');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/onnxruntime\s+onnxruntime-node 1\.30/);
    expect(r.stdout).toMatch(/providers\s+cpu/);
  });

  it('checks a model folder: graphs, fast paths, smoke run, fast = slow', () => {
    const r = uit('doctor', '--model', FIXTURE, '--json', '--threads', '1');
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as { onnxruntime: { onnxruntimeVersion: string }; model: { ok: boolean; checks: { name: string; ok: boolean; detail: string }[] } };
    expect(doc.onnxruntime.onnxruntimeVersion).toBe('1.30.0');
    expect(doc.model.ok).toBe(true);
    const byName = Object.fromEntries(doc.model.checks.map((c) => [c.name, c]));
    expect(byName.graph.detail).toMatch(/2 layers, 4 KV heads x 16, KV float32/);
    expect(byName['fast generation'].detail).toMatch(/^yes \(model\.fast\.onnx\)/);
    expect(byName['shared prefix'].detail).toMatch(/^yes/);
    expect(byName['graph sampling'].detail).toMatch(/^yes/);
    expect(byName.files.detail).toMatch(/graphs: model\.onnx, model\.fast\.onnx/);
    expect(byName['smoke run'].ok).toBe(true);
    expect(byName['fast = slow'].ok).toBe(true);
    expect(byName.memory.ok).toBe(true);
    expect(byName.memory.detail).toMatch(/^expected \d+ MiB resident with model\.fast\.onnx loaded \(float32: 1 MiB\), \+1 MiB per 1,000 cached tokens; available [\d.]+ GiB; measured \d+ MiB after loading$/);
    // The checks run in order: the memory is known before anything loads.
    expect(doc.model.checks.map((c) => c.name).indexOf('memory')).toBeLessThan(doc.model.checks.map((c) => c.name).indexOf('graph'));
  });

  it('refuses a model the machine cannot hold before loading it, unless --ignore-memory', () => {
    // A graph that says it holds a [2^20, 2^19] float16 weight in external data: 1 TiB on disk, 2 TiB
    // once the CPU provider widens it to float32. Its data file does not exist: only --ignore-memory
    // gets as far as trying to load it.
    const dir = join(tmp.dir, 'huge');
    mkdirSync(join(dir, 'onnx'), { recursive: true });
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(FIXTURE, f), join(dir, f));
    writeFileSync(join(dir, 'onnx', 'model.onnx'), hugeGraph());
    const r = uit('doctor', '--model', dir, '--json');
    expect(r.code).toBe(4);
    const checks = (JSON.parse(r.stdout) as { model: { checks: { name: string; ok: boolean; detail: string }[] } }).model.checks;
    expect(checks.map((c) => c.name)).toEqual(['files', 'tokenizer', 'memory']);
    expect(checks[2].ok).toBe(false);
    expect(checks[2].detail).toMatch(/^expected 2048\.\d\d GiB resident with model\.onnx loaded \(float16 \(widened to float32 on the CPU\): 1048576 MiB\).*not enough to load it.*--ignore-memory/);
    const forced = uit('doctor', '--model', dir, '--ignore-memory');
    expect(forced.code).toBe(4);
    expect(forced.stdout).toMatch(/ok   memory .*--ignore-memory: loading anyway/);
    expect(forced.stdout).toMatch(/FAIL graph/);
  });

  it('a model.onnx that does not load: one FAIL line for it, never a check both ok and FAIL', () => {
    const dir = join(tmp.dir, 'truncated');
    cpSync(FIXTURE, dir, { recursive: true });
    const graph = join(dir, 'onnx/model.onnx');
    writeFileSync(graph, readFileSync(graph).subarray(0, 2000));
    const r = uit('doctor', '--model', dir, '--json', '--threads', '1');
    expect(r.code).toBe(4);
    const checks = (JSON.parse(r.stdout) as { model: { checks: { name: string; ok: boolean }[] } }).model.checks;
    const names = checks.map((c) => c.name);
    expect(new Set(names).size).toBe(names.length);
    expect(checks.filter((c) => !c.ok).map((c) => c.name)).toEqual(['graph decoder']);
    expect(checks.find((c) => c.name === 'smoke run')?.ok).toBe(true);
  });

  it('exits 4 for a broken model folder', () => {
    const r = uit('doctor', '--model', tmp.dir);
    expect(r.code).toBe(4);
    expect(r.stdout).toMatch(/FAIL files/);
  });
});
