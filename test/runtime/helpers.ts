// Shared pieces of the runtime tests: the committed tiny GPT-J fixture and temp-folder copies of it.
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { Model, loadModel, type Backend } from '../../src/runtime/index.js';

/** Random GPT-J, byte-level tokenizer, three graphs (test/fixtures/tiny-gptj/README or export docs). */
export const FIXTURE = resolve('test/fixtures/tiny-gptj');

export function tempDir(prefix = 'uit-runtime-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A copy of the fixture folder, without some files, for folder-variant tests. */
export function copyFixture(into: string, opts: { drop?: string[] } = {}): string {
  const dst = join(into, 'model');
  cpSync(FIXTURE, dst, { recursive: true });
  for (const f of opts.drop ?? []) rmSync(join(dst, f), { force: true, recursive: true });
  return dst;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/**
 * Whether Debian's python3 with torch + onnx is present (the exporter needs them). Without them a
 * test skips with a visible reason, unless UIT_REQUIRE_SYSTEM_DEPS=1 makes the absence a failure.
 */
export function torchAvailable(): { ok: boolean; reason: string } {
  const r = spawnSync('/usr/bin/python3', ['-c', 'import torch, onnx'], { encoding: 'utf8' });
  if (r.status === 0) return { ok: true, reason: '' };
  return { ok: false, reason: `/usr/bin/python3 with torch and onnx is not available (${(r.stderr || String(r.error)).trim().split('\n').pop()})` };
}

/**
 * The model with its real backend's forward passed through `forward` (to count, record or delay
 * the calls): nothing is mocked, every call still runs the real ORT backend (`next`).
 */
export function withForward(inner: Model, forward: (next: Backend['forward'], ...args: Parameters<Backend['forward']>) => ReturnType<Backend['forward']>): Model {
  const b = inner.backend;
  const backend: Backend = {
    shape: b.shape,
    hasPositionIds: b.hasPositionIds,
    fast: b.fast,
    device: b.device,
    createKv: (rows, capacity, shared) => b.createKv(rows, capacity, shared),
    forward: (input, want, fetchKv) => forward((i, w, f) => b.forward(i, w, f), input, want, fetchKv),
    dispose: () => b.dispose(),
  };
  return new Model(inner.folder, inner.info, inner.tokenizer, backend);
}

/**
 * Runs `fn` on a model loaded from a temp copy of the fixture that `edit` changed (a config file
 * rewritten, say); the model is disposed and the copy removed afterwards.
 */
export async function withFixtureCopy<T>(edit: (dir: string) => void, fn: (m: Model) => Promise<T>): Promise<T> {
  const tmp = tempDir();
  try {
    const dir = copyFixture(tmp.dir);
    edit(dir);
    const m = await loadModel(dir, { threads: 1 });
    try {
      return await fn(m);
    } finally {
      await m.dispose();
    }
  } finally {
    tmp.cleanup();
  }
}
