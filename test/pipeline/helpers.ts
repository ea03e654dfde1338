// Shared pieces of the pipeline tests: the tiny GPT-J fixture as transfer model and scorer, the
// held-out inputs (real P3 and Ni-v2 files from ../shared/data, FLAN templates + rows in
// fixtures/), the CLI through bin/uit.js, and byte-level comparison of output trees.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';

export const FIXTURE = resolve('test/fixtures/tiny-gptj');
export const SEEDS = resolve('test/pipeline/fixtures/seeds.json');
export const FLAN_DIR = resolve('test/pipeline/fixtures/flan');
const DATA = resolve('../shared/data');
/** Held out of the embedded model's training: imdb and ag_news (P3), trec (FLAN), two Ni-v2 tasks outside the train split. */
export const P3_FILES = [join(DATA, 'p3_rendered/imdb_Reviewer_Enjoyment_Yes_No.jsonl'), join(DATA, 'p3_rendered/ag_news_classify_question_first.jsonl')];
/** Real P3 data whose gold outputs are all empty: nothing to score candidates on (a bad task). */
export const P3_EMPTY_GOLD = join(DATA, 'p3_rendered/trec_trec1.jsonl');
export const NIV2_FILES = [
  join(DATA, 'niv2/tasks/task1413_dart_object_identification.json'),
  join(DATA, 'niv2/tasks/task1411_dart_subject_identification.json'),
];
export const ALL_INPUTS = [...P3_FILES, FLAN_DIR, ...NIV2_FILES];

/** Small enough for seconds on 2 shared cores; the transfer prompt is the few-shot one. */
export const GEN = ['--seeds', SEEDS, '--num-candidates', '3', '--max-new-tokens', '24'];
export const SCORE = ['--instances', '6'];
export const SMALL = [...GEN, ...SCORE, '--threads', '1'];

export function tempDir(prefix = 'uit-pipeline-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function uit(args: string[], env: NodeJS.ProcessEnv = {}): CliResult {
  const r = spawnSync(process.execPath, ['bin/uit.js', ...args], { encoding: 'utf8', env: { ...process.env, ...env } });
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/** The same, without blocking this process (needed when this process serves HTTP to the child). */
export function uitAsync(args: string[]): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, ['bin/uit.js', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolvePromise({ code, signal, stdout, stderr }));
  });
}

export interface Summary {
  tasks: { ok: number; failed: number; filtered: number; otherShards: number; shortenedScoring: number; truncatedScoring: number };
  candidates: { generated: number; cached: number };
  scores: { computed: number; cached: number };
  modelCalls: { generation: number; scoring: number; total: number };
  errors: string | null;
  failures: { file: string; line?: number; task?: string; reason: string }[];
  unusedCandidates?: number;
}

/** Runs a pipeline command with --json and returns its parsed summary (failing on an unexpected exit code). */
export function run(args: string[], expectCode = 0): Summary {
  const r = uit([...args, '--json']);
  if (r.code !== expectCode) throw new Error(`uit ${args.join(' ')} exited ${r.code} (expected ${expectCode}):\n${r.stderr}${r.stdout}`);
  return JSON.parse(r.stdout) as Summary;
}

/** Every file under `dir` (hidden ones included) as relative path -> bytes. */
export function tree(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out.set(relative(dir, p), readFileSync(p));
    }
  };
  if (existsSync(dir)) walk(dir);
  return out;
}

/** Asserts two trees hold the same files with the same bytes; returns the file count. */
export function sameTree(a: Map<string, Buffer>, b: Map<string, Buffer>): number {
  const ka = [...a.keys()].sort();
  const kb = [...b.keys()].sort();
  if (JSON.stringify(ka) !== JSON.stringify(kb)) throw new Error(`different files:\n${ka.join('\n')}\n---\n${kb.join('\n')}`);
  for (const k of ka) if (!a.get(k)!.equals(b.get(k)!)) throw new Error(`${k} differs`);
  return ka.length;
}

export function jsonl<T = Record<string, unknown>>(file: string): T[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as T);
}

export function needBuilt(files: string[]): void {
  for (const f of files) {
    const built = `dist/${f}.js`;
    if (!existsSync(built) || statSync(built).mtimeMs < statSync(`src/${f}.ts`).mtimeMs) {
      throw new Error(`${built} is missing or older than its source: run \`npm run build\` first (npm test does)`);
    }
  }
}
