#!/usr/bin/env node
// The GPU check: one command for a GPU machine (made to finish within 10 minutes there) that writes
// one JSON file with what the WebGPU route does on that machine:
//   doctor      `uit doctor --device webgpu` (the adapter, its limits, the Vulkan pieces) and the
//               same with the exported model (smoke run, fast = slow)
//   export      a GPT-J-shaped model with random weights, exported here at run time in fp16
//               (default: the 1.3B shape, d 2048, 24 layers; --shape small for a software adapter)
//   parity      WebGPU against the CPU provider on that model: logits of a prefill and cached
//               steps, scoring log-probs, greedy text
//   throughput  batch-1 greedy decode and scoring, WebGPU and CPU in one process, and the decode
//               against the memory-bandwidth limit (weight bytes per token / bandwidth)
//   bench       `npm run bench -- --device webgpu` on the model, and `--device cpu` beside it
// Every step is timed and kept in the JSON even when it fails; a step that would pass the time
// budget is skipped and says so.
//
//   node scripts/gpu-check.mjs                               # on the GPU machine: 1.3B fp16
//   node scripts/gpu-check.mjs --shape small --bandwidth 20  # end to end on lavapipe (CI machine)
//   node scripts/gpu-check.mjs --out bench/results/gpu-check-h100.json --bandwidth 3350
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, freemem, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SHAPES = {
  // GPT-J layout at GPT-Neo 1.3B's size: ~1.4B parameters with GPT-J's untied LM head, 2.8 GB in fp16.
  'gptj-1.3b': { vocab_size: 50400, n_positions: 2048, n_embd: 2048, n_layer: 24, n_head: 16, rotary_dim: 64 },
  // Small enough for a software adapter (lavapipe binds at most 128 MiB per tensor).
  small: { vocab_size: 50400, n_positions: 1024, n_embd: 256, n_layer: 4, n_head: 4, rotary_dim: 32 },
};
/** Memory bandwidth of known GPUs, GB/s, matched on the adapter's description (--bandwidth overrides). */
const BANDWIDTH = [
  [/H200/i, 4800],
  [/H100.*(SXM|HBM3)/i, 3350],
  [/H100.*PCIe/i, 2000],
  [/A100.*80/i, 2039],
  [/A100/i, 1555],
  [/L40S?/i, 864],
  [/RTX 4090/i, 1008],
];

const { values: args } = parseArgs({
  options: {
    shape: { type: 'string', default: 'gptj-1.3b' },
    out: { type: 'string' },
    bandwidth: { type: 'string' },
    'budget-s': { type: 'string', default: '540' },
    python: { type: 'string', default: '/usr/bin/python3' },
    model: { type: 'string' },
    'cpu-threads': { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (args.help) {
  console.log(`usage: node scripts/gpu-check.mjs [options]
  --shape NAME|FILE   ${Object.keys(SHAPES).join(' | ')} | a GPT-J config.json (default gptj-1.3b)
  --model DIR         use this exported model folder instead of exporting one
  --out FILE          the JSON (default bench/results/gpu-check-<time>.json)
  --bandwidth GB/s    the GPU's memory bandwidth (default: known from the adapter's name)
  --budget-s N        stop starting steps after N seconds (default 540: the check fits 10 minutes)
  --cpu-threads N     CPU provider threads for the comparisons (default: all cores)
  --python PATH       Python with torch and onnx, for the export (default /usr/bin/python3)`);
  process.exit(0);
}

const t0 = Date.now();
const budget = Number(args['budget-s']) * 1000;
const left = () => budget - (Date.now() - t0);
const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const outFile = resolve(args.out ?? join(ROOT, 'bench/results', `gpu-check-${stamp}.json`));
const cpuThreads = Number(args['cpu-threads'] ?? cpus().length);
const work = mkdtempSync(join(tmpdir(), 'uit-gpu-check-'));
const result = {
  kind: 'uit gpu check',
  started: new Date(t0).toISOString(),
  machine: { cpus: cpus().length, cpu_model: cpus()[0]?.model, mem_gib: +(totalmem() / 2 ** 30).toFixed(1), free_gib: +(freemem() / 2 ** 30).toFixed(1), load_average_at_start: loadavg().map((x) => +x.toFixed(2)), node: process.version },
  steps: {},
};
const log = (s) => process.stderr.write(`gpu-check ${((Date.now() - t0) / 1000).toFixed(0).padStart(4)}s  ${s}\n`);
function save() {
  result.finished = new Date().toISOString();
  result.seconds = +((Date.now() - t0) / 1000).toFixed(1);
  mkdirSync(dirname(outFile), { recursive: true });
  writeFileSync(outFile, `${JSON.stringify(result, null, 2)}\n`);
}

/** Runs one step (timed, errors kept), unless the budget is spent or it needs more than `needS`. */
async function stepOf(name, needS, fn) {
  if (left() < needS * 1000) {
    result.steps[name] = { skipped: `time budget: ${Math.round(left() / 1000)} s left, the step needs about ${needS} s` };
    log(`${name}: skipped (budget)`);
    return undefined;
  }
  log(`${name} ...`);
  const s = Date.now();
  try {
    const value = await fn();
    result.steps[name] = { ok: true, seconds: +((Date.now() - s) / 1000).toFixed(1), ...value };
    log(`${name}: ok in ${result.steps[name].seconds} s`);
    return value;
  } catch (err) {
    result.steps[name] = { ok: false, seconds: +((Date.now() - s) / 1000).toFixed(1), error: String(err?.stack ?? err).slice(0, 2000) };
    log(`${name}: FAILED ${String(err?.message ?? err).split('\n')[0]}`);
    return undefined;
  } finally {
    save();
  }
}

function run(cmd, argv, timeoutS, env = process.env) {
  const r = spawnSync(cmd, argv, { cwd: ROOT, encoding: 'utf8', timeout: timeoutS * 1000, env, maxBuffer: 64 * 2 ** 20 });
  return { code: r.status, signal: r.signal, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}
const tail = (s, n = 3000) => (s.length > n ? s.slice(-n) : s);

// ---------------------------------------------------------------- the machine
await stepOf('machine', 10, async () => {
  const smi = run('nvidia-smi', ['--query-gpu=name,driver_version,memory.total,memory.used', '--format=csv,noheader'], 10);
  return { nvidia_smi: smi.code === 0 ? smi.stdout.trim() : null, vk_driver_files: process.env.VK_DRIVER_FILES ?? null, ld_library_path: process.env.LD_LIBRARY_PATH ?? null };
});

const doctor = await stepOf('doctor', 60, async () => {
  const r = run(process.execPath, ['bin/uit.js', 'doctor', '--device', 'webgpu', '--json'], 120);
  const j = JSON.parse(r.stdout);
  return { exit_code: r.code, webgpu: j.webgpu, onnxruntime: j.onnxruntime.onnxruntimeVersion };
});
const adapter = doctor?.webgpu?.adapter;
if (!adapter) {
  result.verdict = 'no WebGPU adapter: see steps.doctor.webgpu.problems';
  save();
  log(`no adapter; wrote ${outFile}`);
  process.exit(4);
}
const bandwidthGBs = Number(args.bandwidth ?? BANDWIDTH.find(([re]) => re.test(`${adapter.description} ${adapter.device} ${result.steps.machine?.nvidia_smi ?? ''}`))?.[1] ?? NaN);
result.bandwidth_gb_s = Number.isFinite(bandwidthGBs) ? bandwidthGBs : null;

// ---------------------------------------------------------------- the model
const shape = SHAPES[args.shape] ?? JSON.parse(readFileSync(args.shape, 'utf8'));
result.shape = { name: SHAPES[args.shape] ? args.shape : args.shape, ...shape };
let modelDir = args.model ? resolve(args.model) : join(work, 'model');
if (!args.model) {
  await stepOf('export', 240, async () => {
    const cfg = join(work, 'config.json');
    writeFileSync(cfg, JSON.stringify(shape));
    const r = run(args.python, ['scripts/export-gptj.py', '--random-init', cfg, modelDir, '--dtype', 'fp16', '--seed', '1', '--tokenizer', join(ROOT, 'models/uit-tiny')], 600);
    if (r.code !== 0) throw new Error(`export-gptj.py exited ${r.code ?? r.signal}: ${tail(r.stderr, 1500)}`);
    return { dir: modelDir, dtype: 'fp16' };
  });
}
const onnxDir = join(modelDir, 'onnx');
if (!existsSync(join(onnxDir, 'model.onnx'))) {
  result.verdict = 'no model to check (the export failed)';
  save();
  process.exit(1);
}
const weightBytes = readdirSync(onnxDir).filter((f) => f.endsWith('.onnx_data')).reduce((n, f) => n + statSync(join(onnxDir, f)).size, 0);
result.model = { dir: modelDir, weight_bytes: weightBytes };

await stepOf('doctor_model', 90, async () => {
  const r = run(process.execPath, ['bin/uit.js', 'doctor', '--device', 'webgpu', '--model', modelDir, '--json'], 240);
  const j = JSON.parse(r.stdout);
  return { exit_code: r.code, checks: j.model?.checks };
});

// ---------------------------------------------------------------- parity and throughput, in process
const rt = await import(join(ROOT, 'dist/runtime/index.js'));
const maxAbs = (a, b) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);
let gpu;
let cpu;
await stepOf('load', 120, async () => {
  const s = performance.now();
  gpu = await rt.loadModel(modelDir, { device: 'webgpu' });
  const g = performance.now();
  cpu = await rt.loadModel(modelDir, { device: 'cpu', threads: cpuThreads });
  return { webgpu_load_s: +((g - s) / 1000).toFixed(2), cpu_load_s: +((performance.now() - g) / 1000).toFixed(2), adapter: gpu.info.adapter ?? null, rss_mib: Math.round(process.memoryUsage().rss / 2 ** 20) };
});

const promptIds = (n) => Array.from({ length: n }, (_, i) => 1 + ((i * 37) % 4000));
if (gpu && cpu) {
  await stepOf('parity', 120, async () => {
    const ids = promptIds(64);
    const caches = [cpu.backend.createKv(1, 0), gpu.backend.createKv(1, 0)];
    const diffs = [];
    try {
      let outs = await Promise.all([cpu, gpu].map((m, i) => rt.step(m.backend, caches[i], ids, ids.length, 'last')));
      diffs.push(maxAbs(outs[0].last, outs[1].last));
      for (let k = 0; k < 8; k++) {
        outs = await Promise.all([cpu, gpu].map((m, i) => rt.step(m.backend, caches[i], [100 + k], 1, 'last')));
        diffs.push(maxAbs(outs[0].last, outs[1].last));
      }
    } finally {
      caches.forEach((c) => c.dispose());
    }
    const lps = [];
    for (const m of [cpu, gpu]) {
      const p = await rt.prefill(m.backend, ids.slice(0, 48));
      lps.push((await rt.scoreContinuations(m.backend, p, [ids.slice(48), ids.slice(48, 56)])).flatMap((x) => Array.from(x)));
      p.kv.dispose();
    }
    const texts = [];
    for (const m of [cpu, gpu]) texts.push((await rt.generate(m, [{ promptIds: ids }], { maxNewTokens: 32, greedy: true, stopOnEos: false, draftTokens: 0 })).outputs[0].samples[0].tokenIds);
    const same = texts[0].filter((t, i) => t === texts[1][i]).length;
    return {
      logits_max_abs_diff: { prefill: diffs[0], cached_steps: Math.max(...diffs.slice(1)) },
      logprobs_max_abs_diff: maxAbs(lps[0], lps[1]),
      greedy_32_identical: same === 32,
      greedy_32_same_tokens: same,
      live_device_tensors_after: rt.liveDeviceTensors(),
    };
  });

  const throughput = async (m, label, newTokens) => {
    const ids = promptIds(128);
    await rt.generate(m, [{ promptIds: ids }], { maxNewTokens: 4, greedy: true, draftTokens: 0 }); // warm-up: shaders, buffers
    const g = await rt.generate(m, [{ promptIds: ids }], { maxNewTokens: newTokens, greedy: true, stopOnEos: false, draftTokens: 0 });
    const decodeS = g.timings.decodeMs / 1000;
    const prefix = await rt.prefill(m.backend, promptIds(256));
    const conts = Array.from({ length: 8 }, (_, i) => promptIds(64 + i).slice(i));
    await rt.scoreContinuations(m.backend, prefix, conts.slice(0, 2)); // warm-up
    const s = performance.now();
    await rt.scoreContinuations(m.backend, prefix, conts, { batchSize: 8 });
    const scoreS = (performance.now() - s) / 1000;
    prefix.kv.dispose();
    const scored = conts.reduce((n, c) => n + c.length, 0);
    const perToken = decodeS / Math.max(1, g.timings.steps);
    const limitS = Number.isFinite(bandwidthGBs) ? weightBytes / (bandwidthGBs * 1e9) : null;
    return {
      [label]: {
        decode_batch1_tokens_per_s: +(g.timings.steps / decodeS).toFixed(2),
        decode_ms_per_token: +(perToken * 1000).toFixed(2),
        prefill_128_ms: +g.timings.prefillMs.toFixed(1),
        scoring_tokens_per_s: +(scored / scoreS).toFixed(1),
        ...(label === 'webgpu' && limitS ? { bandwidth_limit_ms_per_token: +(limitS * 1000).toFixed(3), fraction_of_bandwidth_limit: +(limitS / perToken).toFixed(3) } : {}),
      },
    };
  };
  await stepOf('throughput_webgpu', 90, () => throughput(gpu, 'webgpu', 64));
  await stepOf('throughput_cpu', 120, () => throughput(cpu, 'cpu', 16));
  await gpu.dispose();
  await cpu.dispose();
}

// ---------------------------------------------------------------- the bench, both devices
for (const device of ['webgpu', 'cpu']) {
  await stepOf(`bench_${device}`, device === 'webgpu' ? 120 : 150, async () => {
    const argv = ['bench/run.js', '--device', device, '--model', modelDir, '--quick', '--only', 'generate', '--no-peer', '--no-save', '--threads', String(device === 'cpu' ? cpuThreads : 1)];
    const r = run(process.execPath, argv, Math.max(30, Math.floor(left() / 1000) - 20));
    if (r.code !== 0) throw new Error(`bench exited ${r.code ?? r.signal}: ${tail(r.stderr, 1500)}`);
    return { command: `node ${argv.join(' ')}`, table: tail(r.stdout, 6000) };
  });
}

result.load_average_at_end = loadavg().map((x) => +x.toFixed(2));
result.verdict = Object.values(result.steps).every((s) => s.ok !== false) ? 'all steps ran' : 'some steps failed: see steps.*.error';
save();
rmSync(work, { recursive: true, force: true });
log(`wrote ${outFile}`);
