// WebGPU, the GPU route that needs no download: onnxruntime-node bundles its WebGPU execution
// provider (Dawn, over Vulkan on Linux). This module says which adapter a machine has and, when it
// has none, what is missing. onnxruntime does not report the adapter it picked, so the report comes
// from Dawn's own Node binding (the optional `webgpu` package), asked the way onnxruntime asks:
// the high-performance adapter of the platform's backend (Vulkan on Linux).
import { existsSync, mkdirSync, readdirSync, readFileSync, accessSync, constants as fsc } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { findSharedLibs } from './cuda-libs.js';

export interface WebGpuAdapter {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** Dawn's backend: Vulkan on Linux. */
  backend: string;
  /** A CPU implementation (lavapipe/llvmpipe, SwiftShader): correct, and slower than the CPU provider. */
  software: boolean;
  limits: {
    /** Largest buffer, bytes. */
    maxBufferSize: number;
    /** Largest buffer one shader may bind as storage, bytes: a tensor (a weight matrix) must fit. */
    maxStorageBufferBindingSize: number;
  };
}

export interface VulkanDriver {
  /** The ICD manifest. */
  file: string;
  /** Its library_path. */
  library: string;
}

export interface WebGpuReport {
  /** The adapter Dawn offers, or null when there is none (or the probe could not run). */
  adapter: WebGpuAdapter | null;
  /** False when Dawn's Node binding (the optional `webgpu` package) is not installed or fails to load. */
  probed: boolean;
  vulkan: {
    /** Where the dynamic linker finds libvulkan.so.1, or null. */
    loader: string | null;
    /** Vulkan drivers (ICD manifests) where the loader looks. */
    drivers: VulkanDriver[];
    /** The NVIDIA kernel driver is loaded (/proc/driver/nvidia/version). */
    nvidiaKernelDriver: boolean;
  };
  /** What is missing and how to install it (empty when an adapter was found). */
  problems: string[];
}

export const WEBGPU_DOCS = 'docs/runtime.md, section "GPU without a download: WebGPU"';

const SOFTWARE = /llvmpipe|lavapipe|swiftshader|softpipe/i;

/**
 * Dawn prints errors on every start unless XDG_RUNTIME_DIR names a writable folder; when it does
 * not, point it at a private one under the temp folder. Call before the first WebGPU session.
 */
export function ensureRuntimeDir(env: NodeJS.ProcessEnv = process.env): void {
  const cur = env.XDG_RUNTIME_DIR;
  if (cur) {
    try {
      accessSync(cur, fsc.W_OK);
      return;
    } catch {
      // not writable: replace it
    }
  }
  const dir = join(tmpdir(), `uit-runtime-${process.getuid?.() ?? 'user'}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  env.XDG_RUNTIME_DIR = dir;
}

/** The folders the Vulkan loader reads ICD manifests from, or the files VK_DRIVER_FILES names. */
function icdPlaces(env: NodeJS.ProcessEnv): string[] {
  const named = env.VK_DRIVER_FILES ?? env.VK_ICD_FILENAMES;
  if (named) return named.split(':').filter(Boolean);
  const home = env.HOME ?? homedir();
  const config = env.XDG_CONFIG_HOME ?? join(home, '.config');
  const data = env.XDG_DATA_HOME ?? join(home, '.local', 'share');
  const dataDirs = (env.XDG_DATA_DIRS ?? '/usr/local/share:/usr/share').split(':').filter(Boolean);
  return [join(config, 'vulkan/icd.d'), '/etc/xdg/vulkan/icd.d', '/etc/vulkan/icd.d', join(data, 'vulkan/icd.d'), ...dataDirs.map((d) => join(d, 'vulkan/icd.d'))];
}

/** The Vulkan drivers the loader would see. */
export function findVulkanDrivers(env: NodeJS.ProcessEnv = process.env): VulkanDriver[] {
  const files: string[] = [];
  for (const place of icdPlaces(env)) {
    if (place.endsWith('.json')) files.push(place);
    else {
      try {
        for (const n of readdirSync(place).sort()) if (n.endsWith('.json')) files.push(join(place, n));
      } catch {
        // a folder that is not there
      }
    }
  }
  const drivers: VulkanDriver[] = [];
  for (const file of [...new Set(files)]) {
    try {
      const j = JSON.parse(readFileSync(file, 'utf8')) as { ICD?: { library_path?: string } };
      if (j.ICD?.library_path) drivers.push({ file, library: j.ICD.library_path });
    } catch {
      // unreadable manifests are skipped, as the loader skips them
    }
  }
  return drivers;
}

function vulkanFacts(env: NodeJS.ProcessEnv): WebGpuReport['vulkan'] {
  const [loader] = findSharedLibs(['libvulkan.so.1'], env);
  return { loader: loader.path, drivers: findVulkanDrivers(env), nvidiaKernelDriver: existsSync('/proc/driver/nvidia/version') };
}

/** What to install, given what is there (used when no adapter was found, and when onnxruntime finds none). */
export function webgpuProblems(v: WebGpuReport['vulkan'], platform = process.platform): string[] {
  if (platform !== 'linux') return [];
  const problems: string[] = [];
  if (!v.loader) problems.push('the Vulkan loader libvulkan.so.1 is not found: install it (Debian/Ubuntu: apt-get install libvulkan1)');
  const nvidia = v.drivers.some((d) => /nvidia/i.test(d.file) || /nvidia/i.test(d.library));
  if (v.nvidiaKernelDriver && !nvidia) {
    problems.push(
      "the NVIDIA driver is loaded but the Vulkan loader sees no NVIDIA Vulkan driver (nvidia_icd.json): install the driver's Vulkan part " +
        '(Debian: apt-get install nvidia-vulkan-icd; the .run installer puts it in /etc/vulkan/icd.d or /usr/share/vulkan/icd.d), ' +
        'or point VK_DRIVER_FILES at its nvidia_icd.json',
    );
  }
  if (v.drivers.length === 0) {
    problems.push(
      'no Vulkan driver is installed: with an NVIDIA GPU, the NVIDIA driver brings one (nvidia_icd.json); for a software adapter ' +
        '(tests, CI), apt-get install mesa-vulkan-drivers (Mesa 23 or newer: on Debian bookworm, -t bookworm-backports)',
    );
  }
  return problems;
}

export function isSoftwareAdapter(info: { architecture?: string; device?: string; description?: string; isFallbackAdapter?: boolean }): boolean {
  return info.isFallbackAdapter === true || info.architecture === 'software' || SOFTWARE.test(`${info.device ?? ''} ${info.description ?? ''}`);
}

interface DawnModule {
  create(flags: string[]): {
    requestAdapter(o: { powerPreference: string }): Promise<{
      info: { vendor: string; architecture: string; device: string; description: string; isFallbackAdapter?: boolean };
      limits: { maxBufferSize: number; maxStorageBufferBindingSize: number };
    } | null>;
  };
}

let probe: Promise<WebGpuReport> | undefined;

/** Which WebGPU adapter this machine has (asked once per process), and what is missing when none. */
export function probeWebGpu(): Promise<WebGpuReport> {
  return (probe ??= runProbe());
}

async function runProbe(): Promise<WebGpuReport> {
  ensureRuntimeDir();
  const vulkan = vulkanFacts(process.env);
  const backend = process.platform === 'linux' ? 'vulkan' : process.platform === 'win32' ? 'd3d12' : 'metal';
  let dawn: DawnModule;
  try {
    dawn = (await import('webgpu' as string)) as DawnModule;
  } catch (err) {
    return {
      adapter: null,
      probed: false,
      vulkan,
      problems: [`cannot name the adapter: Dawn's Node binding (the optional package "webgpu") does not load (${(err as Error).message.split('\n')[0]})`],
    };
  }
  let found: Awaited<ReturnType<ReturnType<DawnModule['create']>['requestAdapter']>> = null;
  try {
    found = await dawn.create([`backend=${backend}`]).requestAdapter({ powerPreference: 'high-performance' });
  } catch {
    found = null;
  }
  if (!found) {
    const problems = webgpuProblems(vulkan);
    if (problems.length === 0) {
      problems.push(
        `Dawn found no WebGPU adapter on ${backend} although Vulkan drivers are installed (${vulkan.drivers.map((d) => d.library).join(', ') || 'none'}): ` +
          "the driver may be too old for Dawn (Debian bookworm's Mesa 22.3 is; install mesa-vulkan-drivers from bookworm-backports) or the GPU is not visible to this process",
      );
    }
    return { adapter: null, probed: true, vulkan, problems };
  }
  const i = found.info;
  return {
    adapter: {
      vendor: i.vendor,
      architecture: i.architecture,
      device: i.device,
      description: i.description,
      backend,
      software: isSoftwareAdapter(i),
      limits: { maxBufferSize: found.limits.maxBufferSize, maxStorageBufferBindingSize: found.limits.maxStorageBufferBindingSize },
    },
    probed: true,
    vulkan,
    problems: [],
  };
}

/** e.g. "llvmpipe: Mesa 25.0.7-2~bpo12+1 (LLVM 15.0.6) 0.0.1 (mesa, software adapter, vulkan)" */
export function describeAdapter(a: WebGpuAdapter): string {
  const name = a.description || a.device || 'unnamed adapter';
  const arch = a.architecture && a.architecture !== 'software' ? a.architecture : '';
  return `${name} (${[a.vendor, arch, a.software ? 'software adapter' : 'hardware adapter', a.backend].filter(Boolean).join(', ')})`;
}
