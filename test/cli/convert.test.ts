// `uit convert` and `uit demo` through the real binary (bin/uit.js -> dist/): exit codes,
// messages, and that a failed conversion leaves nothing behind.
import { spawnSync } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const REPO = join(__dirname, '../..');
const DATA = join(REPO, '../shared/data');
const tmp = mkdtempSync(join(tmpdir(), 'uit-cli-convert-'));

function uit(args: string[], opts: { node?: string[] } = {}) {
  const r = spawnSync(process.execPath, [...(opts.node ?? []), join(REPO, 'bin/uit.js'), ...args], { encoding: 'utf8', cwd: tmp, maxBuffer: 1 << 26 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function newest(dir: string): number {
  let t = 0;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const s = statSync(p);
    t = Math.max(t, s.isDirectory() ? newest(p) : s.mtimeMs);
  }
  return t;
}

beforeAll(() => {
  // the CLI runs the compiled dist/: it must be built from the current sources
  const mine = ['src/transfer/convert.ts', 'src/transfer/heuristic.ts', 'src/transfer/method.ts', 'src/transfer/template-text.ts', 'src/commands/convert.ts'];
  const built = join(REPO, 'dist/transfer/convert.js');
  const newestSource = Math.max(newest(join(REPO, 'src/formats')), ...mine.map((f) => statSync(join(REPO, f)).mtimeMs));
  if (!existsSync(built) || statSync(built).mtimeMs < newestSource) {
    throw new Error('dist/ is missing or older than the formats/convert sources: run `npm run build` first (npm test does)');
  }
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function write(name: string, text: string): string {
  const p = join(tmp, name);
  writeFileSync(p, text);
  return p;
}

/** Nothing at `out`, and no temp or staging leftovers in the folder. */
function nothingWritten(out: string): void {
  expect(existsSync(out)).toBe(false);
  expect(readdirSync(tmp).filter((f) => f.startsWith('.'))).toEqual([]);
}

describe('uit convert --help', () => {
  it('shows the formats, outputs and examples', () => {
    const r = uit(['convert', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Usage: uit convert [options] <input...>');
    expect(r.stdout).toMatch(/Input formats \(detected from the content\):\n  niv2 /);
    expect(r.stdout).toContain('$ uit convert examples/flan --to alpaca -o out/rte.jsonl');
  });
});

describe('uit convert: bad input exits 3 with file:line: field and writes nothing', () => {
  it('JSON nested deeper than the parser follows is bad input, never a stack overflow', () => {
    const f = write('deep.json', `[${'['.repeat(200000)}${']'.repeat(200000)}]\n`);
    const r = uit(['convert', f, '--to', 'niv2', '--from', 'alpaca', '-o', join(tmp, 'deep.jsonl')]);
    expect(r.code).toBe(3);
    expect(r.stderr).toBe(`uit: ${f}:1: [0]: expected an object, found a list\n`);
    const g = write('deep-bad.jsonl', `{"instruction": "a", "output": ${'['.repeat(5000)}\n`);
    const r2 = uit(['convert', g, '--to', 'niv2', '--from', 'alpaca', '-o', join(tmp, 'deep2.jsonl')]);
    expect(r2.code).toBe(3);
    expect(r2.stderr).toMatch(/^uit: \S+deep-bad\.jsonl:1: malformed JSON at column \d+: nested deeper than 1000 levels\n$/);
  });

  it('a byte that is not printable is named by its code, never printed raw', () => {
    const f = write('control.jsonl', '{"prompt": "a", "completion": "b"}\n\u0001{"prompt": "c"}\n');
    const r = uit(['convert', f, '--to', 'niv2', '-o', join(tmp, 'ctl.jsonl')]);
    expect(r.code).toBe(3);
    expect(r.stderr).toBe(`uit: ${f}:2: malformed JSON at column 1: unexpected U+0001\n`);
    const g = write('control.json', '[\n  {"instruction": "a", "output": "b"},\n  \u001b\n]\n');
    const r2 = uit(['convert', g, '--to', 'niv2', '--from', 'alpaca', '-o', join(tmp, 'ctl2.jsonl')]);
    expect(r2.code).toBe(3);
    expect(r2.stderr).toBe(`uit: ${g}:3: malformed JSON at column 3: unexpected U+001B\n`);
  });

  it('a malformed JSONL line', () => {
    const f = write('bad.jsonl', '{"prompt": "a", "completion": "b"}\n{"prompt": "c", "completion": }\n');
    const out = join(tmp, 'o1.jsonl');
    const r = uit(['convert', f, '--to', 'niv2', '-o', out]);
    expect(r.code).toBe(3);
    expect(r.stderr).toBe(`uit: ${f}:2: malformed JSON at column 31: unexpected '}'\n`);
    nothingWritten(out);
    expect(existsSync(join(tmp, 'o1.provenance.jsonl'))).toBe(false);
  });

  it('malformed YAML', () => {
    const f = write('templates.yaml', 'dataset: d\ntemplates:\n  a: !Template\n    jinja: [unclosed\n');
    const out = join(tmp, 'o2');
    const r = uit(['convert', f, '--from', 'promptsource', '--to', 'niv2', '-o', out]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(new RegExp(`^uit: ${f}:\\d+: malformed YAML: `));
    nothingWritten(out);
  });

  it('a broken template', () => {
    const f = write('broken.yaml', "dataset: d\ntemplates:\n  t1: !Template\n    id: t1\n    name: bad\n    jinja: '{% if x %}no end ||| y'\n");
    const out = join(tmp, 'o3');
    const r = uit(['convert', f, '--to', 'niv2', '-o', out]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(new RegExp(`^uit: ${f}:6: templates\\.t1\\.jinja: template 'bad': template syntax error`));
    nothingWritten(out);
  });

  it('a missing field in a JSON array element, after valid ones', () => {
    const f = write('alpaca.json', '[\n  {"instruction": "a", "input": "", "output": "b"},\n  {"instruction": "a", "input": "",\n   "output": "c"},\n  {"instruction": "d",\n   "input": "e"}\n]\n');
    const out = join(tmp, 'o4.json');
    const r = uit(['convert', f, '--to', 'niv2', '-o', out]);
    expect(r.code).toBe(3);
    expect(r.stderr).toBe(`uit: ${f}:5: [2].output: missing field\n`);
    nothingWritten(out);
  });

  it('an unknown format lists the formats', () => {
    const f = write('prose.txt', 'nothing to see\n');
    const r = uit(['convert', f, '--to', 'niv2', '-o', join(tmp, 'o5')]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('cannot tell the format from the content; pass --from with one of:');
    expect(r.stderr).toContain('  crossfit ');
  });

  it('usage errors exit 2', () => {
    expect(uit(['convert', join(DATA, 'p3_rendered/ag_news_classify.jsonl'), '--to', 'p3']).code).toBe(2);
    const r = uit(['convert', join(DATA, 'p3_rendered/ag_news_classify.jsonl'), '--to', 'flan', '-o', join(tmp, 'x.jsonl')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--to flan writes a folder');
  });
});

describe('uit convert: good input', () => {
  it('prints a summary, writes the output and the provenance sidecar', () => {
    const out = join(tmp, 'mctaco');
    const r = uit(['convert', join(DATA, 'niv2/tasks/task003_mctaco_question_generation_event_duration.json'), '--to', 'niv2', '-o', out]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`converted 1 task (20 instances) from niv2 to niv2 -> ${out} [identity 1]\nprovenance: ${join(out, 'provenance.jsonl')}\n`);
    expect(readFileSync(join(out, 'task003_mctaco_question_generation_event_duration.json'), 'utf8')).toBe(
      readFileSync(join(DATA, 'niv2/tasks/task003_mctaco_question_generation_event_duration.json'), 'utf8'),
    );
  });

  it('streams JSONL to stdout without -o, the summary on stderr', () => {
    const r = uit(['convert', join(DATA, 'p3_rendered/ag_news_classify.jsonl'), '--to', 'alpaca']);
    expect(r.code).toBe(0);
    const recs = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(recs.length).toBe(20);
    expect(recs[0].output).toBe('Business');
    expect(r.stderr).toMatch(/^converted 1 task \(20 instances\) from p3 to alpaca \[heuristic 1\]\n$/);
  });

  it('stops quietly when the reader of stdout goes away (uit convert ... | head)', async () => {
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, [join(REPO, 'bin/uit.js'), 'convert', join(DATA, 'niv2/tasks'), '--to', 'niv2'], { cwd: tmp });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    await new Promise<void>((r) => child.stdout.once('data', () => r()));
    child.stdout.destroy();
    const code = await new Promise<number | null>((r) => child.on('close', r));
    expect(stderr).not.toContain('EPIPE');
    expect(code).toBe(0);
  });

  it('--json prints the summary as JSON, skipped records included', () => {
    const out = join(tmp, 'share.jsonl');
    const r = uit(['convert', join(DATA, 'sharegpt/dummy_conversation.json'), '--to', 'alpaca', '-o', out, '--json']);
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s).toMatchObject({ tasks: 167, instances: 167, to: 'alpaca', from: ['sharegpt'], out });
    expect(s.skipped.length).toBe(333);
  });
});

describe('a file larger than the memory the process may use', () => {
  it('converts 60 MB of P3 JSONL with a 40 MB heap', async () => {
    const big = join(tmp, 'huge.jsonl');
    const ws = createWriteStream(big);
    const pad = 'x'.repeat(400);
    let bytes = 0;
    for (let i = 0; bytes < 60 * 1024 * 1024; i++) {
      const line = JSON.stringify({ prompt: `Text ${i} ${pad}\nIs it long?\n`, completion: 'yes<|endoftext|>' }) + '\n';
      bytes += line.length;
      if (!ws.write(line)) await new Promise<void>((r) => ws.once("drain", () => r()));
    }
    await new Promise<void>((r) => ws.end(() => r()));
    const lines = readFileSync(big, 'utf8').split('\n').length - 1;
    const out = join(tmp, 'huge-out.jsonl');
    const r = uit(['convert', big, '--to', 'alpaca', '-o', out], { node: ['--max-old-space-size=40'] });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`(${lines} instances)`);
    let n = 0;
    const text = readFileSync(out, 'utf8');
    for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) n++;
    expect(n).toBe(lines);
    rmSync(big);
    rmSync(out);
  });
});

describe('uit demo --method heuristic (the model-free demo of the formats layer)', () => {
  it('converts the bundled PromptSource, FLAN and P3 sample to Ni-v2', () => {
    const out = join(tmp, 'demo');
    const r = uit(['demo', '--method', 'heuristic', '-o', out]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`converted 19 tasks (90 instances) from promptsource, flan, p3 to niv2 -> ${out} [heuristic 19]`);
    expect(existsSync(join(out, 'p3/imdb_Reviewer_Enjoyment_Yes_No.json'))).toBe(true);
    expect(JSON.parse(readFileSync(join(out, 'flan/rte/0.json'), 'utf8')).Definition[0]).toMatch(/^In this task, you are given a premise and a hypothesis\./);
  });

  it('--json', () => {
    const r = uit(['demo', '--method', 'heuristic', '-o', join(tmp, 'demo-json'), '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.summary.tasks).toBe(19);
    expect(j.example.task.Definition[0]).toMatch(/^In this task/);
  });
});
