// Which of the shared libraries onnxruntime-node's CUDA provider loads can the dynamic linker
// find? onnxruntime's own error names only the first missing one, and a machine with another CUDA
// major version (CUDA 13 next to a provider built for 12) fails the same way as one with none, so
// `uit doctor` lists them all, with the versions that are there instead.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/** What onnxruntime-node 1.30's CUDA provider (built for CUDA 12, cuDNN 9) needs. */
export const CUDA_PROVIDER_LIBS = [
  'libcudart.so.12',
  'libcublas.so.12',
  'libcublasLt.so.12',
  'libcufft.so.11',
  'libcurand.so.10',
  'libcudnn.so.9',
] as const;

export interface CudaLib {
  name: string;
  /** Where the linker would find it, or null. */
  path: string | null;
  /** Other versions of the same library that are there (e.g. libcudart.so.13), when it is missing. */
  others: string[];
}

/**
 * Looks the libraries up as the dynamic linker would, in LD_LIBRARY_PATH and then the ldconfig
 * cache. `env` and `ldconfig` are parameters so that tests can point them at a folder of their
 * own; by default they are the process's and `ldconfig -p` (absent on macOS: nothing found).
 */
export function findCudaLibs(
  env: NodeJS.ProcessEnv = process.env,
  ldconfig: () => string = ldconfigCache,
): CudaLib[] {
  return findSharedLibs(CUDA_PROVIDER_LIBS, env, ldconfig);
}

/** The same lookup for any list of library file names (the Vulkan loader for WebGPU, too). */
export function findSharedLibs(
  names: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
  ldconfig: () => string = ldconfigCache,
): CudaLib[] {
  const dirs = (env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean);
  const known = new Map<string, string>(); // file name -> path, first one wins
  for (const dir of dirs) {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      continue; // a missing folder on the path is not an error for the linker either
    }
    for (const n of names) if (n.startsWith('lib') && n.includes('.so') && !known.has(n)) known.set(n, join(dir, n));
  }
  for (const line of ldconfig().split('\n')) {
    // "	libcudart.so.13 (libc6,x86-64) => /usr/local/cuda/lib64/libcudart.so.13"
    const m = /^\s*(\S+)\s+\([^)]*\)\s+=>\s+(\S+)/.exec(line);
    if (m && !known.has(m[1]) && existsSync(m[2])) known.set(m[1], m[2]);
  }
  return names.map((name) => {
    const path = known.get(name) ?? null;
    const stem = name.slice(0, name.indexOf('.so') + 3);
    const others = path ? [] : [...known.keys()].filter((n) => n.startsWith(`${stem}.`) && n !== name).sort();
    return { name, path, others };
  });
}

function ldconfigCache(): string {
  for (const bin of ['/sbin/ldconfig', '/usr/sbin/ldconfig', 'ldconfig']) {
    try {
      return execFileSync(bin, ['-p'], { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] });
    } catch {
      // try the next one
    }
  }
  return '';
}

/** One line for a report: what is missing, and what is there instead. */
export function describeCudaLibs(libs: readonly CudaLib[]): string {
  const missing = libs.filter((l) => !l.path);
  if (missing.length === 0) return `all found (${libs.map((l) => l.name).join(', ')})`;
  const parts = missing.map((l) => (l.others.length ? `${l.name} (found ${l.others.join(', ')} instead)` : l.name));
  return `missing ${parts.join(', ')}; found ${libs.length - missing.length} of ${libs.length}`;
}
