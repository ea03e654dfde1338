// Shared pieces of the bundle tests: building with the real CLI, running with no network
// (`unshare -n`), and a clean environment like a fresh user's (no npm_* variables from `npm test`).
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

export const REPO = resolve(__dirname, '../..');
export const PKG = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { name: string; version: string };
export const TARGET = `${process.platform}-${process.arch}`;
/** Held out of uit-tiny's training (test/pipeline/helpers.ts): Ni-v2 tasks outside the train split. */
export const HELD_OUT = ['task1413_dart_object_identification.json', 'task1411_dart_subject_identification.json'].map((f) =>
  join(REPO, '../shared/data/niv2/tasks', f),
);
export const REQUIRE = process.env.UIT_REQUIRE_SYSTEM_DEPS === '1';

/**
 * The command prefix that runs a program with no network: a new, empty network namespace. As root
 * `unshare -n`; otherwise `unshare -rn` where user namespaces are allowed. Null when neither works.
 */
export function netlessPrefix(): { prefix: string[] | null; reason: string } {
  for (const prefix of [['unshare', '-n'], ['unshare', '-rn']]) {
    const r = spawnSync(prefix[0], [...prefix.slice(1), 'true'], { encoding: 'utf8' });
    if (r.status === 0) return { prefix, reason: '' };
  }
  return { prefix: null, reason: '`unshare -n true` fails here (needs root or user namespaces)' };
}

/** A temp folder outside the checkout. */
export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A fresh user's environment: its own HOME and XDG_CACHE_HOME, PATH as given, nothing from npm. */
export function freshEnv(home: string, path: string[], extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  mkdirSync(join(home, '.cache'), { recursive: true });
  return { PATH: path.join(':'), HOME: home, XDG_CACHE_HOME: join(home, '.cache'), LANG: 'C.UTF-8', ...extra };
}

/** PATH entries for a machine with Node: this Node's folder (with npm beside it) and the system's tools. */
export const SYSTEM_PATH = [dirname(process.execPath), '/usr/bin', '/bin'];

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function run(cmd: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeout?: number } = {}): Run {
  const r: SpawnSyncReturns<string> = spawnSync(cmd[0], cmd.slice(1), {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    encoding: 'utf8',
    timeout: opts.timeout ?? 300_000,
    maxBuffer: 64 * 2 ** 20,
  });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** `uit bundle ARGS -o DIR --json` with the checkout's CLI (dist/ built by `npm test`). */
export function bundle(args: string[], out: string): { file: string; sha256: string; bytes: number; info: Record<string, unknown> } {
  const r = run([process.execPath, join(REPO, 'bin/uit.js'), 'bundle', ...args, '-o', out, '--json'], { cwd: REPO });
  if (r.code !== 0) throw new Error(`uit bundle ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as { file: string; sha256: string; bytes: number; info: Record<string, unknown> };
}
