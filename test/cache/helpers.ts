// Shared by the cache tests: temp dirs, and a private compiled build for child processes.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const CHILD_WRITER = fileURLToPath(new URL('./children/writer.mjs', import.meta.url));

export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'uit-cache-test-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface PrivateBuild {
  /** The compiled dist/ folder: child processes import the cache from `${dist}/cache/index.js`. */
  dist: string;
  /** A launcher that runs the compiled CLI like bin/uit.js does. */
  uit: string;
  remove(): void;
}

/**
 * Child processes (concurrent writers, the CLI) need compiled JavaScript. They get a build of
 * their own, so neither a stale dist/ nor another test rebuilding dist/ at the same moment
 * can change what they run. It sits in the repo's ignored tmp/ (so `better-sqlite3` resolves
 * from the repo's node_modules), shaped like the repo: package.json, src and models are links.
 */
export function privateBuild(): PrivateBuild {
  mkdirSync(join(REPO, 'tmp'), { recursive: true });
  const root = mkdtempSync(join(REPO, 'tmp', 'cache-test-build-'));
  for (const name of ['package.json', 'src', 'models']) {
    if (existsSync(join(REPO, name))) symlinkSync(join(REPO, name), join(root, name));
  }
  const dist = join(root, 'dist');
  try {
    execFileSync(join(REPO, 'node_modules', '.bin', 'tsc'), ['-p', join(REPO, 'tsconfig.build.json'), '--outDir', dist], {
      cwd: REPO,
      stdio: 'pipe',
    });
  } catch {
    // A type error elsewhere in the tree does not stop tsc from emitting; checked just below.
  }
  if (!existsSync(join(dist, 'cache', 'index.js')) || !existsSync(join(dist, 'cli.js'))) {
    rmSync(root, { recursive: true, force: true });
    throw new Error('tsc did not produce dist/cache and dist/cli.js');
  }
  const uit = join(root, 'uit.mjs');
  execFileSync(process.execPath, ['-e', `require('fs').writeFileSync(${JSON.stringify(uit)}, "import('./dist/cli.js').then((m) => m.main(process.argv));\\n")`]);
  return { dist, uit, remove: () => rmSync(root, { recursive: true, force: true }) };
}
