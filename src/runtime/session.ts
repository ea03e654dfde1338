// onnxruntime-node sessions and execution providers. A GPU is never a silent downgrade: `--device
// cuda` and `--device webgpu` either run there or fail with what to install; only `auto` may fall
// back, and it says so.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import ort from 'onnxruntime-node';
import { ModelError } from '../errors.js';
import { describeCudaLibs, findCudaLibs, type CudaLib } from './cuda-libs.js';
import { readOnnxOutputNames } from './onnx-proto.js';
import { describeAdapter, ensureRuntimeDir, probeWebGpu, WEBGPU_DOCS, webgpuProblems, type WebGpuAdapter } from './webgpu.js';

import { DEVICES, type Device, type ResolvedDevice } from './devices.js';

export { DEVICES, type Device, type ResolvedDevice };
export type GraphOptimizationLevel = 'disabled' | 'basic' | 'extended' | 'all';

export interface SessionConfig {
  device: Device;
  /** Threads for one operator (intra-op); 0 or undefined: onnxruntime's default (physical cores). */
  threads?: number;
  graphOptimizationLevel?: GraphOptimizationLevel;
}

export const GPU_DOCS = 'docs/runtime.md, section "GPU (CUDA)"';

const require = createRequire(import.meta.url);

/** Where onnxruntime-node keeps its native libraries on this platform. */
export function ortBinaryDir(): string {
  const pkgDir = dirname(require.resolve('onnxruntime-node/package.json'));
  return join(pkgDir, 'bin', 'napi-v6', process.platform, process.arch);
}

export function ortVersion(): string {
  return ort.env.versions.node ?? ort.env.versions.common;
}

export interface ProviderReport {
  onnxruntimeVersion: string;
  platform: string;
  /** What the binding was built with; `bundled: false` means the library is installed separately. */
  backends: { name: string; bundled: boolean }[];
  cuda: {
    /** The prebuilt binaries support CUDA only on linux/x64. */
    supportedPlatform: boolean;
    providerLibrary: string;
    installed: boolean;
    installCommand: string;
    /**
     * The CUDA and cuDNN libraries the provider loads, as the dynamic linker finds them (linux/x64;
     * only when asked for: the lookup runs ldconfig).
     */
    libraries?: CudaLib[];
  };
}

export function cudaInstallCommand(): string {
  const script = join(dirname(require.resolve('onnxruntime-node/package.json')), 'script', 'install.js');
  // this Node's own path: a bundle made with --with-node has no `node` on PATH
  return `${process.execPath} ${script} --onnxruntime-node-install=cuda12`;
}

export function providerReport(opts: { libraries?: boolean } = {}): ProviderReport {
  const lib = join(ortBinaryDir(), 'libonnxruntime_providers_cuda.so');
  return {
    onnxruntimeVersion: ortVersion(),
    platform: `${process.platform}/${process.arch}`,
    backends: ort.listSupportedBackends().map((b) => ({ name: b.name, bundled: b.bundled })),
    cuda: {
      supportedPlatform: process.platform === 'linux' && process.arch === 'x64',
      providerLibrary: lib,
      installed: existsSync(lib),
      installCommand: cudaInstallCommand(),
      ...(opts.libraries ? { libraries: process.platform === 'linux' && process.arch === 'x64' ? findCudaLibs() : [] } : {}),
    },
  };
}

function cudaMissingError(report: ProviderReport): ModelError {
  if (!report.cuda.supportedPlatform) {
    return new ModelError(
      `--device cuda: onnxruntime-node ships CUDA support only for linux/x64, this is ${report.platform}; ` +
        `use --device cpu (see ${GPU_DOCS})`,
    );
  }
  return new ModelError(
    `--device cuda: the CUDA execution provider of onnxruntime-node ${report.onnxruntimeVersion} is not installed ` +
      `(${report.cuda.providerLibrary} is missing). Install it with:\n  ${report.cuda.installCommand}\n` +
      `It also needs the NVIDIA driver, CUDA 12 and cuDNN 9 libraries on the library path; see ${GPU_DOCS}. ` +
      'Use --device auto to fall back to the CPU when CUDA is unavailable.',
  );
}

function baseOptions(cfg: SessionConfig): ort.InferenceSession.SessionOptions {
  const options: ort.InferenceSession.SessionOptions = {
    graphOptimizationLevel: cfg.graphOptimizationLevel ?? 'all',
    interOpNumThreads: 1,
    executionMode: 'sequential',
    logSeverityLevel: 3,
  };
  // The binding rejects a present-but-undefined key, so leave it out for onnxruntime's default.
  if (cfg.threads && cfg.threads > 0) options.intraOpNumThreads = cfg.threads;
  return options;
}

export interface CreatedSession {
  session: ort.InferenceSession;
  device: ResolvedDevice;
  /** Why `auto` chose what it chose. */
  note?: string;
  /** On WebGPU: the adapter, as Dawn reports it (absent when the report could not be made). */
  adapter?: WebGpuAdapter;
}

/**
 * Outputs that stay on a GPU device: the KV entries (the decoder's present.*, the fast graph's
 * new_key_values.*), and the fast graph's [rows, vocab] outputs, brought back only by the steps
 * that need them (every output is fetched on every run: backend.ts says why).
 */
const DEVICE_OUTPUT = /^((present|new_key_values)\.\d+\.(key|value)|logits_last|probs_last)$/;

/** Session options for WebGPU: the provider, with onnxruntime's CPU provider for what it lacks. */
export function webgpuSessionOptions(cfg: Omit<SessionConfig, 'device'>): ort.InferenceSession.SessionOptions {
  return { ...baseOptions({ ...cfg, device: 'webgpu' }), executionProviders: ['webgpu'] };
}

async function openWebGpu(path: string, cfg: SessionConfig): Promise<CreatedSession> {
  ensureRuntimeDir();
  const gpu = await probeWebGpu();
  // The locations are fixed when the session is made, so the output names are read from the file.
  const preferredOutputLocation = Object.fromEntries(readOnnxOutputNames(path).map((n) => [n, DEVICE_OUTPUT.test(n) ? ('gpu-buffer' as const) : ('cpu' as const)]));
  try {
    const session = await ort.InferenceSession.create(path, { ...webgpuSessionOptions(cfg), preferredOutputLocation });
    return { session, device: 'webgpu', adapter: gpu.adapter ?? undefined };
  } catch (err) {
    const problems = gpu.problems.length ? gpu.problems : webgpuProblems(gpu.vulkan);
    throw new ModelError(
      `--device webgpu: onnxruntime could not start the WebGPU execution provider for ${path}: ${ortReason((err as Error).message)}\n` +
        (gpu.adapter ? `Dawn's adapter: ${describeAdapter(gpu.adapter)}.\n` : '') +
        (problems.length ? `${problems.map((p) => `- ${p}`).join('\n')}\n` : '') +
        `See ${WEBGPU_DOCS}; \`uit doctor --device webgpu\` says what this machine has.`,
      { cause: err },
    );
  }
}

/**
 * Creates a session for one graph file. `cuda` and `webgpu` run there or fail; `auto` tries CUDA
 * when its provider library is installed, then WebGPU on a hardware adapter (a software one is
 * used only when asked for by name: it is slower than the CPU provider), then the CPU, and says why.
 */
export async function createSession(path: string, cfg: SessionConfig): Promise<CreatedSession> {
  if (cfg.device === 'webgpu') return openWebGpu(path, cfg);
  const report = providerReport();
  const wantCuda = cfg.device === 'cuda' || (cfg.device === 'auto' && report.cuda.supportedPlatform && report.cuda.installed);
  if (cfg.device === 'cuda' && !(report.cuda.supportedPlatform && report.cuda.installed)) throw cudaMissingError(report);
  if (wantCuda) {
    try {
      const session = await ort.InferenceSession.create(path, {
        ...baseOptions(cfg),
        executionProviders: [{ name: 'cuda', deviceId: 0 }, 'cpu'],
      });
      return { session, device: 'cuda' };
    } catch (err) {
      if (cfg.device === 'cuda') {
        throw new ModelError(
          `--device cuda: onnxruntime could not start the CUDA execution provider for ${path}: ${(err as Error).message}\n` +
            `The provider needs an NVIDIA GPU and driver, CUDA 12 and cuDNN 9 on the library path ` +
            `(here: ${describeCudaLibs(findCudaLibs())}); see ${GPU_DOCS}.`,
          { cause: err },
        );
      }
      return autoWithoutCuda(path, cfg, `CUDA failed (${firstLine((err as Error).message)})`);
    }
  }
  if (cfg.device !== 'auto') return { session: await openCpu(path, cfg), device: 'cpu' };
  return autoWithoutCuda(path, cfg, report.cuda.supportedPlatform ? 'the CUDA provider library is not installed' : `no CUDA provider for ${report.platform}`);
}

/** `auto` after CUDA: WebGPU on a hardware adapter, else the CPU; the note says why. */
async function autoWithoutCuda(path: string, cfg: SessionConfig, noCuda: string): Promise<CreatedSession> {
  const gpu = await probeWebGpu();
  let why: string;
  if (gpu.adapter && !gpu.adapter.software) {
    try {
      const created = await openWebGpu(path, cfg);
      return { ...created, note: `${noCuda}; using WebGPU on ${describeAdapter(gpu.adapter)}` };
    } catch (err) {
      why = `WebGPU failed (${firstLine((err as Error).message)})`;
    }
  } else if (gpu.adapter) why = `the only WebGPU adapter is a software one, ${describeAdapter(gpu.adapter)} (--device webgpu uses it)`;
  else why = gpu.probed ? 'no WebGPU adapter' : 'no WebGPU adapter report (the optional package "webgpu" is not installed)';
  return { session: await openCpu(path, cfg), device: 'cpu', note: `${noCuda}; ${why}; using the CPU` };
}

async function openCpu(path: string, cfg: SessionConfig): Promise<ort.InferenceSession> {
  try {
    return await ort.InferenceSession.create(path, { ...baseOptions(cfg), executionProviders: ['cpu'] });
  } catch (err) {
    throw new ModelError(`cannot load ${path}: ${firstLine((err as Error).message)}`, { cause: err });
  }
}

function firstLine(s: string): string {
  return s.split('\n')[0];
}

/** onnxruntime's message without its source location ("/onnxruntime_src/...cc:136 ... was false. Failed to ..."). */
function ortReason(s: string): string {
  const line = firstLine(s);
  const m = /\bwas false\. (.*)$/.exec(line);
  return m ? m[1] : line;
}

export function parseDevice(value: string): Device {
  if ((DEVICES as readonly string[]).includes(value)) return value as Device;
  throw new ModelError(`unknown device "${value}": use ${DEVICES.slice(0, -1).join(', ')} or ${DEVICES[DEVICES.length - 1]}`);
}
