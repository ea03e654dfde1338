// The CUDA library lookup behind `uit doctor`'s "cuda libs" line, on real folders: files named as
// the libraries, found through LD_LIBRARY_PATH and through ldconfig-style cache lines.
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CUDA_PROVIDER_LIBS, describeCudaLibs, findCudaLibs } from '../../src/runtime/index.js';
import { tempDir } from './helpers.js';

const tmp = tempDir('uit-cuda-libs-');
afterAll(() => tmp.cleanup());

function folder(name: string, files: readonly string[]): string {
  const dir = join(tmp.dir, name);
  mkdirSync(dir, { recursive: true });
  for (const f of files) writeFileSync(join(dir, f), '');
  return dir;
}

describe('findCudaLibs', () => {
  it('finds libraries on LD_LIBRARY_PATH and names the other versions present when one is missing', () => {
    // A CUDA 13 machine with cuDNN 9: the provider (built for CUDA 12) would not load.
    const dir = folder('cuda13', ['libcudart.so.13', 'libcudart.so.13.0.96', 'libcublas.so.13', 'libcublasLt.so.13', 'libcudnn.so.9']);
    const libs = findCudaLibs({ LD_LIBRARY_PATH: `/nonexistent-uit:${dir}` }, () => '');
    expect(libs.map((l) => l.name)).toEqual([...CUDA_PROVIDER_LIBS]);
    const by = Object.fromEntries(libs.map((l) => [l.name, l]));
    expect(by['libcudnn.so.9'].path).toBe(join(dir, 'libcudnn.so.9'));
    expect(by['libcudart.so.12']).toEqual({ name: 'libcudart.so.12', path: null, others: ['libcudart.so.13', 'libcudart.so.13.0.96'] });
    expect(by['libcublas.so.12'].others).toEqual(['libcublas.so.13']); // not libcublasLt
    expect(by['libcurand.so.10']).toEqual({ name: 'libcurand.so.10', path: null, others: [] });
    const line = describeCudaLibs(libs);
    expect(line).toContain('libcudart.so.12 (found libcudart.so.13, libcudart.so.13.0.96 instead)');
    expect(line).toMatch(/found 1 of 6$/);
  });

  it('reads the ldconfig cache after LD_LIBRARY_PATH, and only entries that exist', () => {
    const five = CUDA_PROVIDER_LIBS.slice(0, 5);
    const dir = folder('cuda12', five);
    const cache = [
      "6 libs found in cache `/etc/ld.so.cache'",
      ...five.map((n) => `\t${n} (libc6,x86-64) => ${join(dir, n)}`),
      `\tlibcudnn.so.9 (libc6,x86-64) => ${join(dir, 'gone', 'libcudnn.so.9')}`,
    ].join('\n');
    const libs = findCudaLibs({}, () => cache);
    expect(libs.filter((l) => l.path).length).toBe(5);
    expect(libs.find((l) => l.name === 'libcudnn.so.9')!.path).toBeNull();
    const all = findCudaLibs({ LD_LIBRARY_PATH: folder('cudnn', ['libcudnn.so.9']) }, () => cache);
    expect(describeCudaLibs(all)).toBe(`all found (${CUDA_PROVIDER_LIBS.join(', ')})`);
  });
});

describe('uit doctor', () => {
  it('lists the CUDA libraries the provider needs, as this machine finds them', () => {
    const dir = folder('doctor', ['libcudart.so.13', 'libcudnn.so.9']);
    const env = { ...process.env, LD_LIBRARY_PATH: dir };
    const json = spawnSync(process.execPath, ['bin/uit.js', 'doctor', '--json'], { encoding: 'utf8', env });
    expect(json.status).toBe(0);
    const libs = JSON.parse(json.stdout).onnxruntime.cuda.libraries as { name: string; path: string | null; others: string[] }[];
    expect(libs.find((l) => l.name === 'libcudnn.so.9')!.path).toBe(join(dir, 'libcudnn.so.9'));
    expect(libs.find((l) => l.name === 'libcudart.so.12')!.others).toContain('libcudart.so.13');
    const text = spawnSync(process.execPath, ['bin/uit.js', 'doctor'], { encoding: 'utf8', env });
    expect(text.stdout).toMatch(/cuda libs\s+missing libcudart\.so\.12 \(found libcudart\.so\.13 instead\)/);
  });
});
