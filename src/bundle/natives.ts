// What a bundle keeps of the packages with native code: this platform's binaries only, the built
// addon without its build tree, and onnxruntime-node without the install script that downloads the
// CUDA provider. One table, so a new native dependency is one entry here.
import { basename } from 'node:path';

export interface Target {
  platform: string;
  arch: string;
  /** Keep onnxruntime-node's CUDA provider libraries (they are never downloaded by the bundle). */
  withCuda: boolean;
}

/** onnxruntime-node's CUDA execution provider, as its install script writes it (linux/x64). */
export const CUDA_PROVIDER_FILES = ['libonnxruntime_providers_cuda.so', 'libonnxruntime_providers_shared.so'] as const;
/** Written by the same download; TensorRT rides along with CUDA. */
const CUDA_EXTRA_FILES = ['libonnxruntime_providers_tensorrt.so'];

export const ORT_BIN = (t: Pick<Target, 'platform' | 'arch'>) => `bin/napi-v6/${t.platform}/${t.arch}`;

interface Rule {
  /** `rel`: the file's path inside the package folder, '/'-separated. */
  keep(rel: string, t: Target): boolean;
  /** An edit of the bundled copy's package.json, and why. */
  patch?(pkg: Record<string, unknown>): { pkg: Record<string, unknown>; note: string } | null;
}

const RULES: Record<string, Rule> = {
  'onnxruntime-node': {
    keep(rel, t) {
      if (!rel.startsWith('bin/')) return true;
      if (!rel.startsWith(`${ORT_BIN(t)}/`)) return false; // another platform's binaries (~245 MB)
      const file = basename(rel);
      if ((CUDA_PROVIDER_FILES as readonly string[]).includes(file) || CUDA_EXTRA_FILES.includes(file)) return t.withCuda;
      return true;
    },
    patch(pkg) {
      const scripts = pkg.scripts as Record<string, string> | undefined;
      if (!scripts?.postinstall) return null;
      const { postinstall: _dropped, ...rest } = scripts;
      return {
        pkg: { ...pkg, scripts: rest },
        note:
          'postinstall removed: it downloads the CUDA provider from NuGet on linux/x64 unless told not to, and a ' +
          'consumer of uit cannot tell it; ask for CUDA with script/install.js (README, GPU)',
      };
    },
  },
  // The addon is built for one Node ABI; its C sources (10 MB of SQLite) and build tree are not needed to run it.
  'better-sqlite3': {
    keep: (rel) =>
      rel === 'package.json' || rel === 'binding.gyp' || rel.startsWith('lib/') || /^(LICENSE|README)/i.test(rel) || rel === BETTER_SQLITE3_ADDON,
  },
  // The Dawn binding of the WebGPU route (an optional dependency): one folder of binaries per platform.
  webgpu: {
    keep(rel, t) {
      if (!rel.startsWith('dist/')) return true;
      const dir = t.platform === 'darwin' ? 'darwin-universal' : `${t.platform}-${t.arch}`;
      return rel.startsWith(`dist/${dir}/`);
    },
  },
};

export const BETTER_SQLITE3_ADDON = 'build/Release/better_sqlite3.node';

export function keepFile(pkgName: string, rel: string, t: Target): boolean {
  const rule = RULES[pkgName];
  return rule ? rule.keep(rel, t) : true;
}

export function patchPackageJson(pkgName: string, pkg: Record<string, unknown>): { pkg: Record<string, unknown>; note: string } | null {
  return RULES[pkgName]?.patch?.(pkg) ?? null;
}
