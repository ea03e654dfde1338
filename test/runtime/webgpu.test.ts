// The WebGPU execution provider on real Vulkan: Mesa's software driver (lavapipe) on CI and on the
// developers' machines, a GPU where there is one. Every number is compared with the CPU provider on
// the same model: logits of prefill and cached steps, greedy and seeded sampled text (shared
// prompts, prompt-lookup drafts and their rewinds, rows that finish early, batches of prompts),
// scoring with prefix reuse, the serve scheduler's batches, `uit score` and `uit convert`. The KV
// cache stays on the device and is released deterministically. lavapipe is slow (about 50 ms a
// forward on the fixture), so every case is small. Without an adapter the suite is skipped with
// the reason, unless UIT_REQUIRE_SYSTEM_DEPS=1 (as .ci/run sets) makes that a failure.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  generate,
  liveDeviceTensors,
  loadModel,
  prefill,
  probeWebGpu,
  scoreContinuations,
  step,
  type GenerateOptions,
  type GenerateRequest,
  type Model,
  type WebGpuReport,
} from '../../src/runtime/index.js';
import { startServer } from '../../src/serve/index.js';
import { FIXTURE, maxAbsDiff, tempDir, torchAvailable } from './helpers.js';

// lavapipe runs small dispatches faster on one thread of its own than on a pool (measured: 68 vs 90 ms a call).
process.env.LP_NUM_THREADS ??= '1';
// Mesa keeps compiled shaders under XDG_CACHE_HOME, which the CLI runs below point at a fresh folder:
// one shared shader cache spares each of them recompiling (70 s instead of 3 s for `uit doctor`).
process.env.MESA_SHADER_CACHE_DIR ??= join(tmpdir(), 'uit-test-mesa-shader-cache');
const TINY = 'models/uit-tiny';
const required = process.env.UIT_REQUIRE_SYSTEM_DEPS === '1';
const report: WebGpuReport = await probeWebGpu();
const run = report.adapter !== null || required;
const title = `WebGPU${report.adapter ? ` on ${report.adapter.description}` : run ? '' : ` (skipped: no adapter: ${report.problems.join('; ')})`}`;

const tmp = tempDir('uit-webgpu-');
const ENV = { ...process.env, XDG_CACHE_HOME: join(tmp.dir, 'xdg'), UIT_CACHE: join(tmp.dir, 'default-cache.sqlite') };
function uit(args: string[], env: NodeJS.ProcessEnv = ENV) {
  const r = spawnSync(process.execPath, ['bin/uit.js', ...args], { encoding: 'utf8', env, timeout: 300_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const models: Record<'fixCpu' | 'fixGpu' | 'tinyCpu' | 'tinyGpu', Model> = {} as never;

// A cold shader cache on a loaded 2-core machine took 155 s for the first cases: room for that.
describe.runIf(run)(title, { timeout: 600_000 }, () => {
  beforeAll(async () => {
    if (!report.adapter) throw new Error(`UIT_REQUIRE_SYSTEM_DEPS=1 but there is no WebGPU adapter: ${report.problems.join('; ')}`);
    // In the CI log: these tests ran, and where.
    console.log(`WebGPU tests run on ${report.adapter.description} (${report.adapter.software ? 'software' : 'hardware'} adapter, ${report.adapter.backend})`);
    for (const cmd of ['generate', 'score', 'convert', 'doctor']) {
      const built = `dist/commands/${cmd}.js`;
      if (!existsSync(built) || statSync(built).mtimeMs < statSync(`src/commands/${cmd}.ts`).mtimeMs) {
        throw new Error(`${built} is missing or older than its source: run \`npm run build\` first (npm test does)`);
      }
    }
    models.fixCpu = await loadModel(FIXTURE, { threads: 1 });
    models.fixGpu = await loadModel(FIXTURE, { device: 'webgpu', threads: 1 });
    models.tinyCpu = await loadModel(TINY, { threads: 1 });
    models.tinyGpu = await loadModel(TINY, { device: 'webgpu', threads: 1 });
  }, 600_000);
  afterAll(async () => {
    for (const m of Object.values(models)) await m?.dispose();
    tmp.cleanup();
  });

  it('loads on webgpu, names the adapter, and keeps no device tensor between calls', () => {
    expect(models.fixGpu.info.device).toBe('webgpu');
    expect(models.fixGpu.info.adapter?.description).toBe(report.adapter!.description);
    expect(liveDeviceTensors()).toBe(0);
  });

  for (const [name, cpuKey, gpuKey] of [
    ['the fixture', 'fixCpu', 'fixGpu'],
    ['uit-tiny', 'tinyCpu', 'tinyGpu'],
  ] as const) {
    it(`${name}: logits within 1e-4 of the CPU on the prefill and on cached steps, the KV cache on the device`, async () => {
      const [cpu, gpu] = [models[cpuKey], models[gpuKey]];
      const ids = cpu.tokenizer.encode('Definition: In this task, you are given a question.');
      const caches = [cpu.backend.createKv(2, 0), gpu.backend.createKv(2, 0)];
      const valid = new Uint8Array(2 * ids.length).fill(1);
      valid.fill(0, ids.length, ids.length + 3); // row 1 left-padded by 3
      const batch = [...ids, ...ids.slice(0, 3).map(() => 0), ...ids.slice(3)];
      const outs = await Promise.all([0, 1].map((d) => step([cpu, gpu][d].backend, caches[d], batch, ids.length, 'last', { newValid: valid })));
      expect(maxAbsDiff(outs[0].last!, outs[1].last!)).toBeLessThan(1e-4);
      for (const t of [17, 42, 99, 5]) {
        const o = await Promise.all([0, 1].map((d) => step([cpu, gpu][d].backend, caches[d], [t, t + 1], 1, 'last')));
        expect(maxAbsDiff(o[0].last!, o[1].last!)).toBeLessThan(1e-4);
      }
      // A row leaves (compaction on the device), and the survivor still matches.
      caches.forEach((c) => c.compact([1]));
      const o = await Promise.all([0, 1].map((d) => step([cpu, gpu][d].backend, caches[d], [7], 1, 'last')));
      expect(maxAbsDiff(o[0].last!, o[1].last!)).toBeLessThan(1e-4);
      expect(liveDeviceTensors()).toBeGreaterThan(0); // the GPU cache holds its keys and values
      caches.forEach((c) => c.dispose());
      expect(liveDeviceTensors()).toBe(0);
    });

    it(`${name}: scoring with a reused prefix gives log-probs within 1e-4 of the CPU`, async () => {
      const [cpu, gpu] = [models[cpuKey], models[gpuKey]];
      const ids = cpu.tokenizer.encode('Definition: Answer the question.\n\nInput: Capital of France?\nOutput: Paris is the capital');
      const conts = [ids.slice(6), ids.slice(6, 10), ids.slice(6, 8)];
      const lps = await Promise.all(
        [cpu, gpu].map(async (m) => {
          const p = await prefill(m.backend, ids.slice(0, 6));
          try {
            return await scoreContinuations(m.backend, p, conts, { batchSize: 2 });
          } finally {
            p.kv.dispose();
          }
        }),
      );
      conts.forEach((_, i) => expect(maxAbsDiff(lps[0][i], lps[1][i])).toBeLessThan(1e-4));
      expect(liveDeviceTensors()).toBe(0);
    });
  }

  /** Generates on both devices and expects identical samples (text, ids, finish reasons). */
  async function sameOnBoth(cpu: Model, gpu: Model, requests: GenerateRequest[], opts: GenerateOptions) {
    const a = await generate(cpu, requests, opts);
    const b = await generate(gpu, requests, opts);
    expect(b.outputs).toEqual(a.outputs);
    expect(liveDeviceTensors()).toBe(0);
    return { cpu: a, gpu: b };
  }

  it('greedy text is identical to the CPU for 32 tokens (prompt-lookup drafts and rewinds on the device)', async () => {
    const prompt = 'Definition: In this task, you are given a sentence and a question. You need to answer the question. Definition: In this task, you are';
    const { gpu } = await sameOnBoth(models.tinyCpu, models.tinyGpu, [{ prompt }], { maxNewTokens: 32, greedy: true, stopOnEos: false });
    expect(gpu.outputs[0].samples[0].tokenIds).toHaveLength(32);
    expect(gpu.timings.draftedTokens).toBeGreaterThan(0);
    expect(gpu.timings.acceptedTokens).toBeLessThan(gpu.timings.draftedTokens); // some drafts were refused: rewinds ran
  });

  it('seeded sampled text is identical: one prompt shared by its samples, drawn in the graph', async () => {
    await sameOnBoth(models.tinyCpu, models.tinyGpu, [{ prompt: 'Definition: In this task', numSamples: 3 }], { maxNewTokens: 12, temperature: 0.9, seed: 5 });
  });

  it('seeded top-p sampling over a batch of prompts whose rows finish early is identical (probabilities come back, rows leave)', async () => {
    const requests = [
      { prompt: 'Input: What is 2+2?\nOutput:', numSamples: 2 },
      { prompt: 'Definition: Classify the review.', numSamples: 2 },
    ];
    const { gpu } = await sameOnBoth(models.tinyCpu, models.tinyGpu, requests, { maxNewTokens: 10, temperature: 1, topP: 0.9, seed: 3, stop: [' '] });
    const finishes = gpu.outputs.flatMap((o) => o.samples.map((s) => s.finishReason));
    expect(finishes).toContain('stop'); // at least one row left the batch before the others
  });

  it("the serve scheduler's batches give the CPU's completions", async () => {
    const results: string[][] = [];
    for (const model of [models.fixCpu, models.fixGpu]) {
      const server = await startServer({ model, port: 0 });
      try {
        const ask = (prompt: string, n: number) =>
          fetch(`${server.baseUrl}/completions`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ model: server.modelName, prompt, max_tokens: 6, n, temperature: 0.8, seed: 9 }),
          }).then(async (r) => ((await r.json()) as { choices: { text: string }[] }).choices.map((c) => c.text));
        results.push((await Promise.all([ask('Hello', 2), ask('Input: 1+1', 1), ask('Definition:', 3)])).flat());
      } finally {
        await server.close();
      }
    }
    expect(results[1]).toEqual(results[0]);
    expect(liveDeviceTensors()).toBe(0);
  });

  it('releases deterministically: the live device-tensor count returns to 0 after each of 1,000 calls, and RSS stays flat', async () => {
    const m = models.fixGpu;
    const rss: number[] = [];
    for (let i = 0; i < 1000; i++) {
      if (i % 4 === 0) await generate(m, [{ prompt: `q${i % 7}`, numSamples: 2 }], { maxNewTokens: 2, temperature: 1, seed: i });
      else {
        const p = await prefill(m.backend, [1 + (i % 5), 2, 3]);
        await scoreContinuations(m.backend, p, [[4, 5], [6]]);
        p.kv.dispose();
      }
      expect(liveDeviceTensors()).toBe(0);
      if (i % 100 === 99) rss.push(process.memoryUsage().rss);
    }
    // After the first 100 calls (shader and buffer caches warm), RSS moves by less than 64 MiB.
    expect(Math.max(...rss.slice(1)) - rss[1]).toBeLessThan(64 * 2 ** 20);
  }, 600_000);

  it('an fp16 export runs on WebGPU within the measured tolerances of its fp32 twin (docs/runtime.md)', async () => {
    const torch = torchAvailable();
    if (!torch.ok) throw new Error(`the fp16 check exports a model: ${torch.reason}`);
    const cfg = join(tmp.dir, 'fp16-config.json');
    writeFileSync(cfg, JSON.stringify({ vocab_size: 257, n_positions: 256, n_embd: 64, n_layer: 2, n_head: 4, rotary_dim: 8 }));
    const dirs: Record<string, string> = {};
    for (const dtype of ['fp32', 'fp16']) {
      dirs[dtype] = join(tmp.dir, `export-${dtype}`);
      const r = spawnSync('/usr/bin/python3', ['scripts/export-gptj.py', '--random-init', cfg, dirs[dtype], '--dtype', dtype, '--seed', '4', '--tokenizer', FIXTURE], {
        encoding: 'utf8',
        env: { ...process.env, OMP_NUM_THREADS: '2' },
      });
      if (r.status !== 0) throw new Error(`export-gptj.py failed:\n${r.stderr.slice(-2000)}`);
    }
    const [ref, half] = [await loadModel(dirs.fp32, { threads: 1 }), await loadModel(dirs.fp16, { device: 'webgpu', threads: 1 })];
    try {
      expect(half.info.kvDtype).toBe('float16');
      const ids = Array.from({ length: 24 }, (_, i) => (i * 37) % 250);
      const caches = [ref.backend.createKv(1, 0), half.backend.createKv(1, 0)];
      let worst = 0;
      let o = await Promise.all([ref, half].map((m, i) => step(m.backend, caches[i], ids, ids.length, 'last')));
      worst = Math.max(worst, maxAbsDiff(o[0].last!, o[1].last!));
      for (const t of [3, 99, 200]) {
        o = await Promise.all([ref, half].map((m, i) => step(m.backend, caches[i], [t], 1, 'last')));
        worst = Math.max(worst, maxAbsDiff(o[0].last!, o[1].last!));
      }
      caches.forEach((c) => c.dispose());
      // Measured on lavapipe: 1.1e-2 on logits of magnitude 1.4 (a 256-wide model, docs/runtime.md).
      expect(worst).toBeLessThan(3e-2);
      expect(worst).toBeGreaterThan(0); // it really ran in half precision
    } finally {
      await ref.dispose();
      await half.dispose();
    }
  }, 300_000);

  it('uit doctor --device webgpu names the adapter and passes its smoke run and fast = slow', () => {
    const r = uit(['doctor', '--device', 'webgpu', '--model', FIXTURE, '--threads', '1', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as { webgpu: WebGpuReport; model: { ok: boolean; checks: { name: string; ok: boolean; detail: string }[] } };
    expect(j.webgpu.adapter?.description).toBe(report.adapter!.description);
    expect(j.webgpu.adapter?.limits.maxStorageBufferBindingSize).toBeGreaterThan(0);
    expect(j.model.ok).toBe(true);
    expect(j.model.checks.find((c) => c.name === 'graph')?.detail).toContain('device webgpu');
    expect(j.model.checks.find((c) => c.name === 'fast = slow')?.ok).toBe(true);
  });

  it('--device webgpu never falls back: without a Vulkan driver it exits 4 saying what to install', () => {
    const env = { ...ENV, VK_DRIVER_FILES: join(tmp.dir, 'no-such-icd.json') };
    const r = uit(['generate', '-m', FIXTURE, '--device', 'webgpu', '-n', '2', 'Hello'], env);
    expect(r.code).toBe(4);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/--device webgpu: onnxruntime could not start the WebGPU execution provider/);
    expect(r.stderr).toMatch(/no Vulkan driver is installed.*mesa-vulkan-drivers/);
    const d = uit(['doctor', '--device', 'webgpu'], env);
    expect(d.code).toBe(4);
    expect(d.stdout).toMatch(/webgpu +no adapter/);
  });

  it('--device auto picks WebGPU only on a hardware adapter, and says what it chose', () => {
    const r = uit(['generate', '-m', FIXTURE, '--device', 'auto', '--greedy', '-n', '2', '--threads', '1', 'Hello']);
    expect(r.code, r.stderr).toBe(0);
    if (report.adapter!.software) expect(r.stderr).toMatch(/runs on cpu \(.*the only WebGPU adapter is a software one/);
    else expect(r.stderr).toMatch(/runs on webgpu/);
  });

  it('uit generate --device webgpu --greedy prints the CPU text and says where it ran', () => {
    const args = ['generate', '-m', TINY, '--greedy', '-n', '16', '--threads', '1', 'Definition: Rewrite the sentence'];
    const cpu = uit(args);
    const gpu = uit([...args, '--device', 'webgpu']);
    expect(gpu.code, gpu.stderr).toBe(0);
    expect(gpu.stdout).toBe(cpu.stdout);
    expect(gpu.stderr).toContain(`runs on webgpu: ${report.adapter!.description}`);
  });

  it('uit score --device webgpu --json gives mean_ce within 1e-4 of the CPU', () => {
    const file = join(tmp.dir, 'pairs.jsonl');
    const pairs = [
      { prefix: 'Definition: Answer the question.\n\nInput: 2+2?\nOutput: ', target: '4' },
      { prefix: 'Definition: Answer the question.\n\nInput: Capital of France?\nOutput: ', target: 'Paris' },
      { prefix: 'Definition: Classify the sentiment.\n\nInput: I loved it.\nOutput: ', target: 'positive' },
    ];
    writeFileSync(file, pairs.map((p) => JSON.stringify(p)).join('\n') + '\n');
    const rows = (device: string) => {
      const r = uit(['score', '-m', TINY, file, '--json', '--no-cache', '--threads', '1', '--device', device]);
      expect(r.code, r.stderr).toBe(0);
      return r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { mean_ce: number });
    };
    const [c, g] = [rows('cpu'), rows('webgpu')];
    c.forEach((row, i) => expect(Math.abs(g[i].mean_ce - row.mean_ce)).toBeLessThan(1e-4));
  });

  it('uit convert --method model writes byte-identical tasks on webgpu and on the CPU; provenance differs only in the last digits of the scores', () => {
    const out = (device: string) => {
      const dir = join(tmp.dir, `convert-${device}`);
      const r = uit([
        'convert', 'examples/flan-trec', '--to', 'niv2', '--method', 'model', '--model', TINY, '-o', dir,
        '--num-candidates', '2', '--instances', '2', '--max-new-tokens', '12', '--threads', '1',
        '--cache', join(tmp.dir, `convert-${device}.sqlite`), '--device', device,
      ]);
      expect(r.code, r.stderr).toBe(0);
      return dir;
    };
    const [c, g] = [out('cpu'), out('webgpu')];
    const files = (dir: string): string[] =>
      readdirSync(dir, { recursive: true, withFileTypes: true })
        .filter((e) => e.isFile())
        .map((e) => join(e.parentPath, e.name).slice(dir.length))
        .sort();
    expect(files(g)).toEqual(files(c));
    expect(files(c).length).toBeGreaterThan(1);
    // Same candidates, same picks, same Ni-v2 files. provenance.jsonl also records each candidate's
    // mean CE and perplexity with full float64 digits, and the two providers' float32 sums differ
    // in the last ones (about 1e-8 relative): those numbers are compared within 1e-4.
    const close = (a: unknown, b: unknown): void => {
      if (typeof a === 'number' && typeof b === 'number') expect(Math.abs(a - b)).toBeLessThan(1e-4 * Math.max(1, Math.abs(b)));
      else if (a && b && typeof a === 'object') {
        expect(Object.keys(a)).toEqual(Object.keys(b));
        for (const k of Object.keys(b)) close((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]);
      } else expect(a).toEqual(b);
    };
    for (const f of files(c)) {
      const [gt, ct] = [readFileSync(join(g, f), 'utf8'), readFileSync(join(c, f), 'utf8')];
      if (!f.endsWith('provenance.jsonl')) expect(gt, f).toBe(ct);
      else {
        const [gl, cl] = [gt.trim().split('\n'), ct.trim().split('\n')];
        expect(gl.length).toBe(cl.length);
        gl.forEach((line, i) => close(JSON.parse(line), JSON.parse(cl[i])));
      }
    }
  }, 600_000);
});
