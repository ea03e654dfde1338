// Outputs that cannot be written, output names, and stopping (issue 21, bugs 2 and 3, and the
// temp files of a stopped run), through the real binary:
// - an output under a regular file, or in a read-only folder, is exit code 8 (OUTPUT) with the
//   path and the reason, for every command that writes a file; never "internal error";
// - output names never leave the output or land on a sidecar (FLAN keys, Ni-v2 ids);
// - SIGTERM removes the unfinished outputs and says so; a SIGKILLed run's temp files are removed
//   by the next run into the same output.
// The read-only folder is a read-only bind mount in a user namespace (`unshare -rm`), which root
// cannot write either; where the kernel refuses user namespaces, `runuser -u nobody` on a 0555
// folder (EACCES) stands in; with neither, that case alone is skipped, with the reason.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { idToRelPath } from '../../src/formats/api.js';
import { StagedDir } from '../../src/io/staged-dir.js';
import { ExitCode, UitError } from '../../src/errors.js';

const REPO = join(__dirname, '../..');
const UIT = join(REPO, 'bin/uit.js');
const MODEL = join(REPO, 'test/fixtures/tiny-gptj');
const P3 = join(REPO, 'examples/p3/imdb_Reviewer_Enjoyment_Yes_No.jsonl');
const tmp = mkdtempSync(join(tmpdir(), 'uit-cli-outputs-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function uit(args: string[]) {
  const r = spawnSync(process.execPath, [UIT, ...args], { encoding: 'utf8', cwd: tmp });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(() => {
  for (const f of ['io/atomic', 'io/staged-dir', 'signals', 'formats/flan']) {
    if (!existsSync(join(REPO, `dist/${f}.js`))) throw new Error(`dist/${f}.js is missing: run \`npm run build\` first (npm test does)`);
  }
  writeFileSync(join(tmp, 'pairs.jsonl'), '{"prefix": "Hello", "target": " world"}\n');
  writeFileSync(join(tmp, 'file'), 'a regular file\n');
});

/** Every command that writes a file, with its output at `out`. */
function writers(out: (name: string) => string, cache = join(tmp, 'cache.sqlite')): Array<[string, string[]]> {
  return [
    ['convert -o FILE.jsonl', ['convert', P3, '--to', 'niv2', '-o', out('c.jsonl')]],
    ['convert -o FILE.json', ['convert', P3, '--to', 'niv2', '-o', out('c.json')]],
    ['convert -o DIR', ['convert', P3, '--to', 'niv2', '-o', out('cdir')]],
    ['convert --to flan', ['convert', P3, '--to', 'flan', '-o', out('flan')]],
    ['convert --method model', ['convert', P3, '--to', 'niv2', '--method', 'model', '--model', MODEL, '--num-candidates', '1', '--max-new-tokens', '4', '--instances', '2', '--cache', cache, '-o', out('m')]],
    ['score -o', ['score', '-m', MODEL, join(tmp, 'pairs.jsonl'), '--no-cache', '-o', out('s.jsonl')]],
    ['generate -o', ['generate', '-m', MODEL, '--max-new-tokens', '2', 'Hi', '-o', out('g.txt')]],
    ['compare --html', ['compare', '--offline', join(REPO, 'test/fixtures/compare/offline'), '--api', join(REPO, 'test/fixtures/compare/api'), '--html', out('r.html')]],
  ];
}

describe('an output that cannot be written: exit code 8, the path and the reason', () => {
  it('under a regular file (ENOTDIR), for every command that writes', () => {
    for (const [what, args] of writers((name) => join(tmp, 'file', name))) {
      const r = uit(args);
      expect(r.stderr, what).not.toMatch(/internal error|\n\s+at /);
      expect(r.code, `${what}: ${r.stderr}`).toBe(ExitCode.OUTPUT);
      expect(r.stderr, what).toMatch(new RegExp(`^uit: ${tmp}/file/\\S+: cannot write: a part of the path is a file, not a folder \\(ENOTDIR\\)\\n$`));
    }
  });

  const how = readOnlyRunner();
  it.skipIf(how.run === null)(`in a read-only folder (${how.name})`, () => {
    const ro = join(tmp, 'ro');
    mkdirSync(ro);
    const cacheDir = join(tmp, 'ro-cache');
    mkdirSync(cacheDir, { mode: 0o777 });
    chmodSync(cacheDir, 0o777);
    const cases = writers((name) => join(ro, name), join(cacheDir, 'cache.sqlite'));
    // the folder itself as a folder output, and one inside it
    cases.push(['convert -o RO-DIR', ['convert', P3, '--to', 'niv2', '-o', ro]]);
    for (const [what, args] of cases) {
      const r = how.run!(ro, args);
      expect(r.stderr, what).not.toMatch(/internal error|\n\s+at /);
      expect(r.code, `${what}: ${r.stderr}`).toBe(ExitCode.OUTPUT);
      // (as nobody, onnxruntime may first warn that it cannot persist its telemetry id in $HOME)
      expect(r.stderr, what).toMatch(new RegExp(`(^|\\n)uit: ${ro}\\S*: cannot write: ${how.reason}\\n$`));
    }
    expect(readdirSync(ro)).toEqual([]);
  });
});

/** Runs uit so that `dir` is read-only to it, or null when this machine offers no way. */
function readOnlyRunner(): { name: string; reason: string; run: ((dir: string, args: string[]) => { code: number | null; stderr: string }) | null } {
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  if (spawnSync('unshare', ['-rm', 'sh', '-c', `mount --bind -r ${q(tmpdir())} ${q(tmpdir())}`]).status === 0) {
    return {
      name: 'a read-only bind mount',
      reason: 'read-only file system \\(EROFS\\)',
      run: (dir, args) => {
        const cmd = `mount --bind -r ${q(dir)} ${q(dir)} && exec ${q(process.execPath)} ${q(UIT)} ${args.map(q).join(' ')}`;
        const r = spawnSync('unshare', ['-rm', 'sh', '-c', cmd], { encoding: 'utf8', cwd: tmp });
        return { code: r.status, stderr: r.stderr };
      },
    };
  }
  const nobody = spawnSync('runuser', ['-u', 'nobody', '--', process.execPath, '-e', `require('fs').accessSync(${JSON.stringify(UIT)})`]);
  if (nobody.status === 0) {
    return {
      name: 'a 0555 folder, uit run as nobody',
      reason: 'permission denied \\(EACCES\\)',
      run: (dir, args) => {
        chmodSync(dir, 0o555);
        chmodSync(tmp, 0o777); // nobody writes the model method's cache here
        const r = spawnSync('runuser', ['-u', 'nobody', '--', process.execPath, UIT, ...args], { encoding: 'utf8', cwd: tmp });
        return { code: r.status, stderr: r.stderr };
      },
    };
  }
  return { name: 'skipped: neither `unshare -rm` nor `runuser -u nobody` works here', reason: '', run: null };
}

describe('an existing output folder', () => {
  it('is refused by the model method before any model loads (exit 2), and --force needs a uit output', () => {
    const out = join(tmp, 'existing-out');
    mkdirSync(out);
    writeFileSync(join(out, 'mine.txt'), 'mine');
    for (const extra of [[], ['--force']]) {
      const r = uit(['convert', P3, '--to', 'niv2', '--method', 'model', '--model', join(tmp, 'no-such-model'), '-o', out, ...extra]);
      expect(r.code).toBe(ExitCode.USAGE);
      expect(r.stderr).toMatch(extra.length ? /--force replaces only a folder uit wrote/ : /already exists and holds 1 entry \(mine\.txt\)/);
    }
    expect(readdirSync(out)).toEqual(['mine.txt']);
  });
});

describe('output names never collide with each other or with the sidecars', () => {
  it('FLAN to FLAN with the dataset key ../provenance keeps the rows and the provenance apart', () => {
    const templates = join(tmp, 'escape.json');
    writeFileSync(templates, JSON.stringify({ '../provenance': [{ input: 'Q: {q}', output: '{a}' }] }));
    const rows = join(tmp, 'escape-rows.jsonl');
    writeFileSync(rows, '{"q": "hi", "a": "yo"}\n');
    const out = join(tmp, 'flan-escape');
    const r = uit(['convert', templates, '--from', 'flan', '--rows', rows, '--dataset', '../provenance', '--to', 'flan', '-o', out]);
    expect(r.code, r.stderr).toBe(0);
    const prov = readFileSync(join(out, 'provenance.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { id: string });
    expect(prov).toHaveLength(1);
    expect(prov[0].id).toBe('flan/../provenance/0');
    expect(readdirSync(join(out, 'rows'))).toEqual(['_._provenance.jsonl']);
    expect(readFileSync(join(out, 'rows/_._provenance.jsonl'), 'utf8')).toBe('{"q": "hi", "a": "yo"}\n');
    expect(Object.keys(JSON.parse(readFileSync(join(out, 'templates.json'), 'utf8')) as object)).toEqual(['_._provenance']);
    // the folder reads back with its rows
    const back = uit(['convert', out, '--to', 'alpaca']);
    expect(back.code, back.stderr).toBe(0);
    expect(JSON.parse(back.stdout.trim()) as unknown).toEqual({ instruction: expect.any(String), input: 'Q: hi', output: 'yo' });
    // and ../../x neither leaves the output nor is an internal error
    const far = join(tmp, 'far.json');
    writeFileSync(far, JSON.stringify({ '../../x': [{ input: 'Q: {q}', output: '{a}' }] }));
    const r2 = uit(['convert', far, '--from', 'flan', '--rows', rows, '--dataset', '../../x', '--to', 'flan', '-o', join(tmp, 'flan-far')]);
    expect(r2.code, r2.stderr).toBe(0);
    expect(readdirSync(join(tmp, 'flan-far', 'rows'))).toEqual(['_._.._x.jsonl']);
    expect(existsSync(join(tmp, 'x.jsonl'))).toBe(false);
  });

  it('two FLAN keys that meet on one file name are one failure, not one file written twice', () => {
    // both datasets of a folder, rows beside (a/b finds its rows under its file-safe name too)
    const dir = join(tmp, 'meet-dir');
    mkdirSync(join(dir, 'rows'), { recursive: true });
    writeFileSync(join(dir, 'templates.json'), JSON.stringify({ 'a/b': [{ input: 'Q: {q}', output: '{a}' }], a_b: [{ input: 'Q: {q}?', output: '{a}' }] }));
    writeFileSync(join(dir, 'rows', 'a_b.jsonl'), '{"q": "hi", "a": "yo"}\n');
    const r = uit(['convert', dir, '--to', 'flan', '-o', join(tmp, 'meet-out')]);
    expect(r.code).toBe(ExitCode.BAD_INPUT);
    expect(r.stderr).toMatch(/two tasks map to the FLAN key a_b \(a\/b and a_b\)/);
    expect(existsSync(join(tmp, 'meet-out'))).toBe(false);
  });

  it('Ni-v2 task ids never name a sidecar, a hidden file or a path outside the folder', () => {
    expect(idToRelPath('provenance', '.jsonl')).toBe('_provenance.jsonl');
    expect(idToRelPath('uit-summary', '.json')).toBe('_uit-summary.json');
    expect(idToRelPath('x.errors', '.jsonl')).toBe('_x.errors.jsonl');
    expect(idToRelPath('.hidden', '.json')).toBe('_hidden.json');
    expect(idToRelPath('../../etc/passwd', '.json')).toBe('_/_/etc/passwd.json');
    expect(idToRelPath('task001_x', '.json')).toBe('task001_x.json');
    const dir = new StagedDir(join(tmp, 'guard'));
    try {
      const err = (() => {
        try {
          dir.openFile('../outside.json');
        } catch (e) {
          return e as UitError;
        }
        return undefined;
      })();
      expect(err).toBeInstanceOf(UitError);
      expect(err!.exitCode).toBe(ExitCode.BAD_INPUT);
    } finally {
      dir.abort();
    }
  });
});

describe('a stopped run leaves no temp files', () => {
  const big = join(tmp, 'big.jsonl');
  beforeAll(() => {
    const lines: string[] = [];
    for (let i = 0; i < 150_000; i++) lines.push(JSON.stringify({ instruction: `Rewrite sentence ${i % 997}.`, input: `x${i} `.repeat(8), output: `y${i}` }));
    writeFileSync(big, lines.join('\n') + '\n');
  });

  /** Starts a heuristic convert into `out` and resolves once its `n` temp files (or staging folder) exist. */
  async function started(out: string, n = 2) {
    const child = spawn(process.execPath, [UIT, 'convert', big, '--to', 'niv2', '-o', out], { cwd: tmp, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on('exit', (code, signal) => r({ code, signal })));
    let done = false;
    void exited.then(() => (done = true));
    const temps = () => readdirSync(tmp).filter((f) => f.endsWith('.tmp') || f.includes('uit-staging'));
    while (!done && temps().length < n) await new Promise((r) => setTimeout(r, 20));
    expect(done).toBe(false);
    return { child, exited, temps, stderr: () => stderr };
  }

  it('SIGTERM: exit 143, unfinished outputs removed, and it says so', async () => {
    const run = await started(join(tmp, 'term.jsonl'));
    run.child.kill('SIGTERM');
    expect((await run.exited).code).toBe(143);
    expect(run.stderr()).toMatch(/^\nuit: SIGTERM: stopped; removed 2 unfinished output files \(nothing was written to the output\)\n$/);
    expect(run.temps()).toEqual([]);
    expect(existsSync(join(tmp, 'term.jsonl'))).toBe(false);
  });

  it('SIGKILL leaves its temp files; the next run into the same output removes them', async () => {
    for (const [out, n] of [['kill.jsonl', 2], ['killdir', 1]] as const) {
      const run = await started(join(tmp, out), n);
      run.child.kill('SIGKILL');
      expect((await run.exited).signal).toBe('SIGKILL');
      expect(run.temps().length).toBeGreaterThan(0);
      const r = uit(['convert', P3, '--to', 'niv2', '-o', join(tmp, out)]);
      expect(r.code, r.stderr).toBe(0);
      expect(run.temps()).toEqual([]);
    }
  });
});
