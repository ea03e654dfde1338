// onnxruntime-node sessions and execution providers. CUDA is never a silent downgrade: `--device
// cuda` either runs on CUDA or fails with what to install; only `auto` may fall back to the CPU.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import ort from 'onnxruntime-node';
import { ModelError } from '../errors.js';
import { describeCudaLibs, findCudaLibs, type CudaLib } from './cuda-libs.js';

export type Device = 'cpu' | 'cuda' | 'auto';
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
  device: 'cpu' | 'cuda';
  /** Why `auto` chose the CPU, when it did. */
  note?: string;
}

/**
 * Creates a session for one graph file. `auto` tries CUDA when its provider library is installed
 * and falls back to the CPU (with a note) if that fails.
 */
export async function createSession(path: string, cfg: SessionConfig): Promise<CreatedSession> {
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
      const session = await openCpu(path, cfg);
      return { session, device: 'cpu', note: `CUDA failed (${firstLine((err as Error).message)}); using the CPU` };
    }
  }
  const note =
    cfg.device === 'auto'
      ? report.cuda.supportedPlatform
        ? 'the CUDA provider library is not installed; using the CPU'
        : `no CUDA provider for ${report.platform}; using the CPU`
      : undefined;
  return { session: await openCpu(path, cfg), device: 'cpu', note };
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

export function parseDevice(value: string): Device {
  if (value === 'cpu' || value === 'cuda' || value === 'auto') return value;
  throw new ModelError(`unknown device "${value}": use cpu, cuda or auto`);
}
