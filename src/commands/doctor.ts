// `uit doctor`: what this machine can run, and whether a model folder works, before a long job.
// It says how much memory the model will take before loading it, refuses when the machine cannot
// hold it, and loads one graph at a time (never the weights twice).
import { basename } from 'node:path';
import { Command, Option } from 'commander';
import { deviceOption, int } from '../cli-values.js';
import { ExitCode, ModelError } from '../errors.js';
import { describeCudaLibs } from '../runtime/cuda-libs.js'; // plain Node, no onnxruntime
import { availableMemory, estimateMemory, formatBytes } from '../runtime/memory.js'; // plain Node too
// The runtime (onnxruntime-node) loads when the command runs, not with the CLI.
import type { Device, Model, ModelFolder, ProviderReport, WebGpuReport } from '../runtime/index.js';
import type { InstallationCheck } from '../bundle/manifest.js';
import { describeCheck } from '../bundle/report.js';
import { formatWebGpu, webgpuReport } from './doctor-webgpu.js';

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

export interface DoctorReport {
  node: string;
  platform: string;
  onnxruntime: ProviderReport;
  /** Present when uit runs from a bundle (uit bundle): its files against SHA256SUMS. */
  bundle?: InstallationCheck;
  /** With --device webgpu or auto: the WebGPU adapter, or what is missing. */
  webgpu?: WebGpuReport;
  model?: { dir: string; ok: boolean; checks: Check[] };
}

const SMOKE_PROMPT = 'Hello';
/** KV cache the smoke run and the scoring check hold, in tokens (a generous bound). */
const SMOKE_TOKENS = 64;

export interface DoctorOptions {
  model?: string;
  device?: Device;
  threads?: number;
  /** Load the model even when the machine's available memory is below the expected RSS. */
  ignoreMemory?: boolean;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/**
 * The memory check: expected RSS against what the machine has. Returns false to stop before loading.
 * On CUDA and WebGPU the weights go to the device: the line is only a report there.
 */
function checkMemory(folder: ModelFolder, device: Device, ignore: boolean, add: (name: string, ok: boolean, detail: string) => void): boolean {
  const est = estimateMemory(folder);
  const need = est.expectedRssBytes + SMOKE_TOKENS * est.kvBytesPerToken;
  const avail = availableMemory();
  const detail =
    `expected ${formatBytes(est.expectedRssBytes)} resident with ${est.graph} loaded (${est.weights.join('; ')}), ` +
    `+${formatBytes(1000 * est.kvBytesPerToken)} per 1,000 cached tokens; available ${formatBytes(avail)}`;
  const short = need > avail && (device === 'cpu' || device === 'auto');
  if (short && !ignore) {
    add('memory', false, `${detail}: not enough to load it. Free memory, use a quantized folder (scripts/quantize-model.py --quantize int4), or pass --ignore-memory to load it anyway`);
    return false;
  }
  add('memory', true, short ? `${detail} (--ignore-memory: loading anyway)` : detail);
  return true;
}

async function checkModel(dir: string, device: Device, threads: number | undefined, ignoreMemory: boolean): Promise<{ ok: boolean; checks: Check[] }> {
  const { generate, inspectModelFolder, loadModel, prefill, scoreContinuations } = await import('../runtime/index.js');
  const { loadTokenizer } = await import('../tokenizer/index.js');
  const checks: Check[] = [];
  const add = (name: string, ok: boolean, detail: string) => checks.push({ name, ok, detail });
  const failed = () => ({ ok: false, checks });
  const msg = (err: unknown) => (err instanceof Error ? err.message : String(err));

  let folder: ModelFolder;
  try {
    folder = inspectModelFolder(dir);
    const f = folder.files;
    const graphs = [f.decoder, f.fast].filter((p): p is string => p !== undefined).map((p) => basename(p));
    add('files', true, `model_type ${folder.modelType}; graphs: ${graphs.join(', ')}; external data: ${f.externalData.map((p) => basename(p)).join(', ') || 'none'}`);
  } catch (err) {
    add('files', false, msg(err));
    return failed();
  }
  try {
    const tok = loadTokenizer(folder.dir);
    add('tokenizer', true, `${tok.vocabSize} ids; EOS ${tok.eosTokenIds.join(', ') || 'none (generation stops only at max tokens or stop strings)'}`);
  } catch (err) {
    add('tokenizer', false, msg(err));
    return failed();
  }

  try {
    if (!checkMemory(folder, device, ignoreMemory, add)) return failed();
  } catch (err) {
    add('memory', false, `cannot read the graph to estimate its memory: ${msg(err)}`);
    return failed();
  }
  const memoryCheck = checks[checks.length - 1];

  // The primary graph (model.fast.onnx when present) first, released before model.onnx loads.
  let model: Model;
  try {
    model = await loadModel(folder.dir, { device, threads });
  } catch (err) {
    add('graph', false, msg(err));
    return failed();
  }
  memoryCheck.detail += `; measured ${formatBytes(process.memoryUsage.rss())} after loading`;
  let fast: { last: Float32Array; lp: Float32Array } | undefined;
  const ids = model.tokenizer.encode(`${SMOKE_PROMPT}, world. This is a test.`);
  const i = model.info;
  let step = 'graph';
  try {
    add(
      'graph',
      true,
      `${i.numLayers} layers, ${i.numKvHeads} KV heads x ${i.headDim}, KV ${i.kvDtype}, ` +
        `position_ids ${i.hasPositionIds ? 'yes' : 'no'}; device ${i.device}${i.adapter ? ` on ${i.adapter.description || i.adapter.device}` : ''}${i.deviceNote ? ` (${i.deviceNote})` : ''}`,
    );
    add('fast generation', true, i.fastGeneration ? 'yes (model.fast.onnx)' : 'no: model.onnx only, every step copies the whole KV cache out (run scripts/add-fast-graphs.py)');
    add('fast scoring', true, i.fastScoring ? 'yes (model.fast.onnx)' : 'no: scoring fetches full logits (run scripts/add-fast-graphs.py)');
    add('shared prefix', true, i.sharedKv ? 'yes: one prompt\'s samples and a scored prefix are passed once, not copied per row' : 'no: shared prefixes are copied into every row (export with scripts/export-gptj.py for GPT-J)');
    add('graph sampling', true, i.graphSampling ? 'yes: plain sampling fetches the drawn tokens (token_sampled), not the probabilities' : i.fastGeneration ? 'no: sampled tokens are drawn in JavaScript (run scripts/add-fast-graphs.py to add token_sampled)' : 'no');

    // each step below reports under its own name when it fails (step says which is running)
    step = 'smoke run';
    const t0 = performance.now();
    const gen = await generate(model, [{ prompt: SMOKE_PROMPT }], { maxNewTokens: 1, greedy: true });
    const sample = gen.outputs[0].samples[0];
    add('smoke run', true, `"${SMOKE_PROMPT}" -> token ${sample.tokenIds[0]} ${JSON.stringify(model.tokenizer.tokenText(sample.tokenIds[0]))} in ${Math.round(performance.now() - t0)} ms`);

    if (ids.length >= 3) {
      step = 'scoring';
      const prefix = await prefill(model.backend, ids.slice(0, 2));
      const [lp] = await scoreContinuations(model.backend, prefix, [ids.slice(2)]);
      const finite = Array.from(lp).every(Number.isFinite);
      add('scoring', finite, finite ? `${lp.length} token log-probs, mean ${(lp.reduce((a, b) => a + b, 0) / lp.length).toFixed(3)}` : 'non-finite log-probs');
      if (i.fastGeneration || i.fastScoring) fast = { last: prefix.lastLogits, lp };
    }
  } catch (err) {
    add(step, false, msg(err));
  } finally {
    await model.dispose();
  }

  // model.onnx alone: it loads, and agrees with the fast graph.
  if (i.graphs.fast && i.graphs.decoder) {
    let slow: Model;
    try {
      slow = await loadModel(folder.dir, { device, threads, fastGraphs: false });
    } catch (err) {
      add('graph decoder', false, msg(err));
      return { ok: false, checks };
    }
    try {
      if (fast) {
        const sp = await prefill(slow.backend, ids.slice(0, 2));
        const [slp] = await scoreContinuations(slow.backend, sp, [ids.slice(2)]);
        const d = Math.max(maxAbsDiff(fast.last, sp.lastLogits), maxAbsDiff(fast.lp, slp));
        const scale = Math.max(1, ...Array.from(sp.lastLogits, Math.abs));
        // fp16 graphs sum in another order per graph: 3.5e-3 apart on WebGPU (docs/runtime.md, fp16).
        // With activations quantized to int8 (MatMulNBits accuracy_level 4, DynamicQuantizeMatMul), a
        // last-bit difference between the graphs' kernels becomes a whole int8 step wherever a value
        // sits on a rounding boundary, and deep models compound those (0.04 on the logits of the
        // 24-layer 1.4B shape): check-parity's bound for such graphs.
        const q = (folder.config as { uit_quantization?: { op?: string; accuracy_level?: number } }).uit_quantization;
        const int8Activations = q !== undefined && (q.op === 'DynamicQuantizeMatMul' || (q.accuracy_level ?? 0) !== 0);
        const tol = int8Activations ? 0.25 + 0.05 * scale : i.kvDtype === 'float16' ? 1e-2 * scale : 1e-3;
        add('fast = slow', d < tol, `the fast graph agrees with model.onnx: max |diff| ${d.toExponential(1)} (tolerance ${tol.toExponential(1)})`);
      } else add('graph decoder', true, 'model.onnx loads');
    } catch (err) {
      add('fast = slow', false, msg(err));
    } finally {
      await slow.dispose();
    }
  }
  return { ok: checks.every((c) => c.ok), checks };
}

export async function doctor(opts: DoctorOptions): Promise<DoctorReport> {
  // The files first, and nothing loaded when they differ: a damaged onnxruntime library can take
  // the process down (SIGBUS) before any report is printed.
  const { checkInstallation } = await import('../bundle/manifest.js');
  const bundle = checkInstallation() ?? undefined;
  if (bundle && !bundle.ok) {
    const again = bundle.info?.kind === 'npm' ? 'install the package again' : 'unpack the bundle again';
    throw new ModelError(`this installation is not as it was bundled; ${again} (docs/airgap.md):\n  ${describeCheck(bundle).join('\n  ')}`);
  }
  const { providerReport } = await import('../runtime/index.js');
  const report: DoctorReport = {
    node: process.version,
    platform: `${process.platform}/${process.arch}`,
    onnxruntime: providerReport({ libraries: true }),
    ...(bundle ? { bundle } : {}),
  };
  if (opts.device === 'webgpu' || opts.device === 'auto') report.webgpu = await webgpuReport();
  if (opts.model) report.model = { dir: opts.model, ...(await checkModel(opts.model, opts.device ?? 'cpu', opts.threads, opts.ignoreMemory ?? false)) };
  return report;
}

export function formatReport(r: DoctorReport): string {
  const o = r.onnxruntime;
  const lines = [
    `node          ${r.node} (${r.platform})`,
    `onnxruntime   onnxruntime-node ${o.onnxruntimeVersion}`,
    `providers     ${o.backends.map((b) => `${b.name}${b.bundled ? '' : ' (separate install)'}`).join(', ')}`,
    `cuda          ${
      !o.cuda.supportedPlatform
        ? `not available on ${o.platform} (prebuilt CUDA support is linux/x64 only)`
        : o.cuda.installed
          ? `provider library installed (${o.cuda.providerLibrary}); needs CUDA 12 + cuDNN 9`
          : `provider library not installed; to use --device cuda run:\n              ${o.cuda.installCommand}`
    }`,
  ];
  if (o.cuda.libraries && o.cuda.supportedPlatform) lines.push(`cuda libs     ${describeCudaLibs(o.cuda.libraries)}`);
  if (r.bundle) describeCheck(r.bundle).forEach((l, i) => lines.push(`${i === 0 ? 'bundle' : ''}`.padEnd(14) + l));
  if (r.webgpu) lines.push(...formatWebGpu(r.webgpu));
  if (r.model) {
    lines.push('', `model         ${r.model.dir}`);
    for (const c of r.model.checks) lines.push(`  ${c.ok ? 'ok  ' : 'FAIL'} ${c.name.padEnd(16)}${c.detail}`);
    lines.push(r.model.ok ? 'model ok' : 'model has problems (see FAIL lines)');
  }
  return `${lines.join('\n')}\n`;
}

export function register(program: Command): void {
  program
    .command('doctor')
    .summary('check Node, onnxruntime, execution providers and a model folder')
    .description(
      'Show Node, onnxruntime and the execution providers this machine offers, and check a model folder: ' +
        'files, tokenizer, the memory it needs (before loading it), graphs, a one-token smoke run, scoring, and that the fast graph agrees with model.onnx ' +
        '(one graph loaded at a time).',
    )
    .option('-m, --model <dir>', 'also check this model folder: files, graphs, a one-token smoke run')
    .addOption(deviceOption('execution provider for the model check (and, with webgpu, the adapter report): cpu, cuda, webgpu or auto'))
    .option('--threads <n>', 'onnxruntime intra-op threads', int('--threads', 1))
    .option('--ignore-memory', 'load the model even when the available memory is below its expected RSS')
    .option('--json', 'print the report as JSON')
    .addHelpText(
      'after',
      `
The memory line gives the expected resident memory with the model loaded (from the graph file,
before loading it) and the machine's available memory; on the CPU, when the first exceeds the
second, the model is not loaded (exit code 4) unless --ignore-memory is given.

Run from a bundle (uit bundle), it first checks every file against the bundle's SHA256SUMS.
Exit code 0 when everything checked works, 4 when the model folder has a problem, when a bundle's
files are not as bundled, when the machine's memory cannot hold the model, or (with --device
webgpu) when there is no WebGPU adapter. --device webgpu or auto adds the WebGPU adapter report:
vendor, architecture, software or hardware, limits, the Vulkan loader and drivers, and what to
install when something is missing.

Examples:
  $ uit doctor
  $ uit doctor --model models/uit-tiny
  $ uit doctor --device webgpu --model models/uit-tiny
  $ uit doctor --model ./gpt-j-6b-onnx --device cuda --json`,
    )
    .action(async (opts: DoctorOptions & { device: Device; json?: boolean }) => {
      const report = await doctor(opts);
      process.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
      if (report.model && !report.model.ok) process.exitCode = ExitCode.MODEL;
      if (opts.device === 'webgpu' && !report.webgpu?.adapter) process.exitCode = ExitCode.MODEL;
    });
}
