// What `uit` loads at start. Every command module declares its options when the CLI starts, so the
// heavy modules (the model runtime, SQLite, Jinja, the tokenizer, zod, YAML, the progress bar) must
// load only inside the command that runs: `uit --help`, `uit X --help` and light commands stay quick.
// Real processes through bin/uit.js -> dist/, with a resolve hook that records every module loaded.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SERVE_DEFAULTS } from '../../src/commands/serve.js';
import { ExitCode } from '../../src/errors.js';
import { FORMAT_NAMES, TARGET_NAMES } from '../../src/formats/names.js';
import { FORMATS, WRITERS } from '../../src/formats/registry.js';
import { DEFAULT_CONNECTION_LIMITS, DEFAULT_LIMITS, DEFAULT_MAX_BODY_BYTES } from '../../src/serve/index.js';

const REPO = join(__dirname, '../..');
const tmp = mkdtempSync(join(tmpdir(), 'uit-startup-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const HEAVY = ['onnxruntime-node', 'better-sqlite3', '@huggingface/jinja', '@huggingface/tokenizers', 'zod', 'yaml', 'cli-progress'];
const COMMANDS = ['convert', 'transfer', 'denoise', 'demo', 'compare', 'cache', 'generate', 'doctor', 'serve', 'score', 'score-instructions', 'bundle'];

beforeAll(() => {
  // the CLI runs the compiled dist/: it must be built from the current sources
  for (const f of ['cli', 'commands/index', ...COMMANDS.map((c) => `commands/${c}`), 'transfer/pipeline-options', 'formats/names']) {
    const built = join(REPO, 'dist', `${f}.js`);
    if (!existsSync(built) || statSync(built).mtimeMs < statSync(join(REPO, 'src', `${f}.ts`)).mtimeMs) {
      throw new Error(`${built} is missing or older than its source: run \`npm run build\` first (npm test does)`);
    }
  }
});

let traces = 0;
/** Runs uit with the import tracer; returns the exit code and the packages it loaded. */
function traced(args: string[]): { code: number | null; stdout: string; packages: Set<string> } {
  const file = join(tmp, `trace-${traces++}.txt`);
  const r = spawnSync(process.execPath, ['--import', join(__dirname, 'fixtures/trace-imports.mjs'), join(REPO, 'bin/uit.js'), ...args], {
    encoding: 'utf8',
    cwd: tmp,
    env: { ...process.env, UIT_TRACE_FILE: file, UIT_CACHE: join(tmp, 'cache.sqlite') },
  });
  const urls = existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
  expect(urls.some((u) => u.endsWith('/dist/cli.js')), `the tracer saw the CLI load (${args.join(' ')})`).toBe(true);
  const packages = new Set(
    urls.flatMap((u) => {
      const m = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(u);
      return m ? [m[1]] : [];
    }),
  );
  return { code: r.status, stdout: r.stdout, packages };
}

const heavyIn = (packages: Set<string>) => HEAVY.filter((p) => packages.has(p));

describe('startup', () => {
  it('uit --help and every command --help load none of the heavy modules', () => {
    const top = traced(['--help']);
    expect(top.code).toBe(0);
    expect(top.stdout).toContain('score-instructions');
    expect(heavyIn(top.packages)).toEqual([]);
    expect([...top.packages]).toEqual(['commander']);
    for (const cmd of [...COMMANDS, 'cache stats', 'cache export']) {
      const r = traced([...cmd.split(' '), '--help']);
      expect(r.code, cmd).toBe(0);
      expect(heavyIn(r.packages), cmd).toEqual([]);
    }
  });

  it('a light command loads what it needs and nothing of the model runtime', () => {
    const r = traced(['cache', 'stats', '--json']);
    expect(r.code).toBe(ExitCode.CACHE); // no cache file yet: refused, after SQLite was asked
    expect(heavyIn(r.packages)).toEqual(['better-sqlite3']);
  });

  it('and a model command still loads the runtime when it runs', () => {
    const r = traced(['doctor', '--json']);
    expect(r.code).toBe(0);
    expect(r.packages.has('onnxruntime-node')).toBe(true);
    expect(JSON.parse(r.stdout)).toHaveProperty('onnxruntime');
  });

  it("the constants repeated for the light declarations agree with their modules'", () => {
    const c = DEFAULT_CONNECTION_LIMITS;
    expect(SERVE_DEFAULTS).toEqual({
      maxTokens: DEFAULT_LIMITS.maxTokens,
      maxN: DEFAULT_LIMITS.maxN,
      maxBodyBytes: DEFAULT_MAX_BODY_BYTES,
      headersTimeout: c.headersTimeoutMs / 1000,
      requestTimeout: c.requestTimeoutMs / 1000,
      keepAliveTimeout: c.keepAliveTimeoutMs / 1000,
      maxConnections: c.maxConnections,
    });
    expect(FORMATS.map((f) => f.name)).toEqual(FORMAT_NAMES);
    expect(Object.keys(WRITERS)).toEqual(TARGET_NAMES);
  });
});
