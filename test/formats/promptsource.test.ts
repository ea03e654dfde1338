import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { materialize, type LazyTask, type Skipped } from '../../src/formats/api.js';
import { compileTemplate } from '../../src/formats/jinja-py.js';
import { loadTemplatesYaml, promptsource, PsRenderer, type PsTemplate } from '../../src/formats/promptsource.js';
import { parseRow } from '../../src/io/located-json.js';
import { InputError } from '../../src/errors.js';

const DATA = join(__dirname, '../../../shared/data');
const TEMPLATES = join(DATA, 'promptsource/templates');
const ROWS: Record<string, Record<string, unknown>> = JSON.parse(
  readFileSync(join(__dirname, '../fixtures/formats/promptsource-rows.json'), 'utf8'),
);
const tmp = mkdtempSync(join(tmpdir(), 'uit-ps-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function yamlFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...yamlFiles(p));
    else if (name === 'templates.yaml') out.push(p);
  }
  return out;
}

const first = () => 0; // `choice` picks the first item, as the Python reference is told to

// Loading and compiling 1812 templates takes seconds: once per file run.
let loaded: Array<{ file: string; dataset: string; templates: PsTemplate[] }> | null = null;
function allTemplates(): NonNullable<typeof loaded> {
  loaded ??= yamlFiles(TEMPLATES).map((file) => ({
    file,
    dataset: file.slice(TEMPLATES.length + 1, -'/templates.yaml'.length),
    templates: loadTemplatesYaml(file).templates,
  }));
  return loaded;
}
const renderers = new Map<PsTemplate, PsRenderer>();

function render(file: string, t: PsTemplate, row: Record<string, unknown>): { parts: string[]; choices: string[] | null } | { error: string } {
  try {
    let r = renderers.get(t);
    if (!r) renderers.set(t, (r = new PsRenderer(t, file, { truncate: true, seed: 0, rng: first })));
    return r.apply(row, 1);
  } catch (err) {
    return { error: (err as Error).message };
  }
}

async function readAll(path: string, opts = {}): Promise<LazyTask[]> {
  const out: LazyTask[] = [];
  for await (const t of promptsource.read(path, opts)) out.push(t);
  return out;
}

describe('every shared templates.yaml', () => {
  it('loads and compiles every template (1812 in 248 files)', () => {
    let n = 0;
    for (const { file, templates } of allTemplates()) {
      for (const t of templates) {
        expect(() => render(file, t, {}), `${file} ${t.name}`).not.toThrow();
        n++;
      }
    }
    expect(allTemplates().length).toBe(248);
    expect(n).toBe(1812);
  });

  it('renders every template of the 83 datasets with hand-made rows to prompt ||| target (or to nothing when the template excludes the row)', () => {
    let rendered = 0;
    for (const { file, dataset, templates } of allTemplates()) {
      const row = ROWS[dataset];
      if (!row) continue;
      for (const t of templates) {
        const r = render(file, t, parseRow(JSON.stringify(row)) as Record<string, unknown>);
        expect('error' in r ? r.error : '', `${dataset} / ${t.name}`).toBe('');
        if ('parts' in r && r.parts.length === 2) {
          expect(r.parts[0].length, `${dataset} / ${t.name}`).toBeGreaterThan(0);
          rendered++;
        } else expect((r as { parts: string[] }).parts, `${dataset} / ${t.name}`).toEqual(['']);
      }
    }
    expect(Object.keys(ROWS).length).toBe(83);
    expect(rendered).toBeGreaterThan(630);
  });
});

// The same cases through Python's jinja2 with PromptSource's Template.apply (ps_reference.py).
const PYTHONS = ['python3', '/usr/bin/python3'];
const python = PYTHONS.find((p) => spawnSync(p, ['-c', 'import jinja2, yaml'], { stdio: 'ignore' }).status === 0);
const requireDeps = process.env.UIT_REQUIRE_SYSTEM_DEPS === '1';

describe.skipIf(!python && !requireDeps)('PromptSource rendering equals Python jinja2 (PromptSource Template.apply)', () => {
  if (!python) {
    it('has a Python with jinja2 and PyYAML', () => {
      throw new Error(`UIT_REQUIRE_SYSTEM_DEPS=1 but none of ${PYTHONS.join(', ')} imports jinja2 and yaml`);
    });
    return;
  }
  type Case = { file: string; id: string; row: Record<string, unknown>; name: string; scenario: string; t: PsTemplate };
  type Ref = { parts?: string[]; choices?: string[] | null; error?: string };
  const scenarios: Record<string, (dataset: string) => Record<string, unknown> | undefined> = {
    rows: (ds) => ROWS[ds],
    none: (ds) => (ROWS[ds] ? Object.fromEntries(Object.keys(ROWS[ds]).map((k) => [k, null])) : undefined),
    empty: () => ({}),
  };
  let results: Map<string, Array<{ c: Case; ref: Ref }>> | null = null;
  // one Python run for all scenarios
  function run(scenario: string): Array<{ c: Case; ref: Ref }> {
    if (!results) {
      const cases: Case[] = [];
      for (const [name, rowFor] of Object.entries(scenarios)) {
        for (const { file, dataset, templates } of allTemplates()) {
          const row = rowFor(dataset);
          if (!row) continue;
          for (const t of templates) cases.push({ file, id: t.id, row, name: `${dataset} / ${t.name}`, scenario: name, t });
        }
      }
      const input = JSON.stringify(cases.map(({ file, id, row }) => ({ file, id, row })));
      const refs: Ref[] = JSON.parse(execFileSync(python!, [join(__dirname, 'ps_reference.py')], { input, maxBuffer: 1 << 28 }).toString());
      results = new Map();
      cases.forEach((c, i) => {
        const list = results!.get(c.scenario) ?? [];
        list.push({ c, ref: refs[i] });
        results!.set(c.scenario, list);
      });
    }
    return results.get(scenario)!;
  }

  function compare(scenario: string): number {
    const list = run(scenario);
    for (const { c, ref } of list) {
      const ours = render(c.file, c.t, parseRow(JSON.stringify(c.row)) as Record<string, unknown>);
      if ('error' in ours || ref.error) {
        // both fail (messages differ between engines), or neither
        expect({ ours: 'error' in ours ? 'error' : ours, ref: ref.error ? 'error' : ref }, c.name).toEqual({ ours: 'error', ref: 'error' });
      } else expect({ parts: ours.parts, choices: ours.choices }, c.name).toEqual(ref);
    }
    return list.length;
  }

  it('with the hand-made rows (656 templates)', () => {
    expect(compare('rows')).toBe(656);
  });

  it('with every field None (missing values)', () => {
    expect(compare('none')).toBe(656);
  });

  it('with an empty row on all 1812 templates (Undefined: same output or both fail)', () => {
    expect(compare('empty')).toBe(1812);
  });

  it('filters, tests and methods no shared template uses', () => {
    const exprs = [
      '{{ xs | batch(2) | list }}', '{{ xs | batch(2, "z") | list }}', '{{ xs | slice(2) | list }}', '{{ xs | slice(3, "z") | list }}',
      '{{ s | center(11) }}|', '{{ s | center(10) }}|', '{{ t | indent(2) }}', '{{ t | indent(2, true, true) }}', '{{ d | dictsort }}',
      '{{ d | dictsort(by="value", reverse=true) }}', '{{ d | items | list }}', '{{ s | pprint }}', '{{ xs | pprint }}', '{{ d | attr("a") }}',
      '{{ "<b>x</b>  <!-- c -->y" | striptags }}', '{{ s.title() }} {{ s.swapcase() }} {{ s.isupper() }} {{ s.islower() }}',
      '{{ s.ljust(8, "*") }}|{{ s.rjust(8) }}', '{{ s.partition("l") }}', '{{ s.rfind("l") }} {{ s.find("z") }}', '{{ xs.copy() }}',
      '{% set e = d.copy() %}{% set _ = e.setdefault("c", 3) %}{{ e }} {{ d }}', '{{ xs | map("upper") | join(",") }}',
      '{{ xs | select("equalto", "b") | list }}', '{{ ys | sum }} {{ ys | max }} {{ ys | min }}', '{{ ys | sort(reverse=true) }}', '{% for a, b in zip(xs, ys) %}{{ (a, b) }}{% endfor %} {{ zip(xs, ys) | list }}',
      '{{ "%s-%05.1f" | format(s, 3.14159) }}', '{{ "{} and {:.2f}".format(s, 2.5) }}', '{{ xs | unique | list }} {{ ["A", "a", "b"] | unique | list }}',
      '{{ (7 // 2) }} {{ (7 / 2) }} {{ (2 ** 3) }} {{ (7 % 3) }}', '{{ s.split("l", 1) }} {{ "a  b c".split() }} {{ "a,b,,c".split(",") }}',
      '{{ " x ".strip() }}|{{ "xxhixx".strip("x") }}|{{ s.startswith(("he", "no")) }}', '{{ ys | round(1) }} {{ 2.5 | round }} {{ 3.5 | round }}',
      '{{ ((xs | length) > 2 and s is string and 3 is number and none is none) }}', '{{ xs[-1] }} {{ xs[1:] }} {{ s[::-1] }}',
      '{% for a in xs %}{{ loop.index }}{{ loop.first }}{{ loop.last }} {% endfor %}', '{{ xs | reverse | list }} {{ s | reverse }}',
      '{{ d.get("zz", "no") }} {{ d.keys() | list }} {{ d.values() | list }}', '{{ "x" ~ 1 ~ none }}', '{{ xs | join(", ") | wordcount }}', '{{ xs | join }}',
    ];
    const yaml = ['dataset: extra', 'templates:', ...exprs.flatMap((e, i) => [`  t${i}: !Template`, `    id: t${i}`, `    name: n${i}`, `    jinja: ${JSON.stringify(e + ' ||| x')}`])].join('\n') + '\n';
    const file = join(tmp, 'extra.yaml');
    writeFileSync(file, yaml);
    const row = { xs: ['a', 'b', 'c'], ys: [1.25, 3, 2], s: 'hello', t: 'one\n\ntwo\n', d: { b: 2, a: 1 } };
    const templates = loadTemplatesYaml(file).templates;
    const refs = JSON.parse(
      execFileSync(python!, [join(__dirname, 'ps_reference.py')], { input: JSON.stringify(templates.map((t) => ({ file, id: t.id, row }))) }).toString(),
    ) as Ref[];
    templates.forEach((t, i) => {
      const ours = render(file, t, row);
      expect('error' in ours ? ours : { parts: ours.parts, choices: ours.choices }, `${exprs[i]}: ${refs[i].error ?? ''}`).toEqual(refs[i]);
    });
  });
});

describe('PromptSource rendering reproduces P3', () => {
  const p3 = (name: string) =>
    readFileSync(join(DATA, 'p3_rendered', `${name}.jsonl`), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { prompt: string; completion: string });
  const template = (ds: string, name: string) => {
    const f = join(TEMPLATES, ds, 'templates.yaml');
    return new PsRenderer(loadTemplatesYaml(f).templates.find((t) => t.name === name)!, f, { truncate: true, seed: 0 });
  };

  it('ag_news classify_question_first: prompt and target', () => {
    const labels = ['World politics', 'Sports', 'Business', 'Science and technology'];
    const r = template('ag_news', 'classify_question_first');
    for (const ex of p3('ag_news_classify_question_first')) {
      const text = ex.prompt.replace(/^What label best describes this news article\?\n/, '').replace(/\n$/, '');
      const target = ex.completion.replace('<|endoftext|>', '');
      const { parts } = r.apply({ text, label: labels.indexOf(target) }, 1);
      expect(parts).toEqual([ex.prompt.replace(/\n$/, ''), target]);
    }
  });

  it('cnn_dailymail news_summary: articles cut to 2048 characters at a word, with "..."', () => {
    const r = template('cnn_dailymail/3.0.0', 'news_summary');
    for (const ex of p3('cnn_dailymail_3_0_0_news_summary')) {
      const shown = ex.prompt.replace(/^Summarise the article:\n\n/, '').replace(/\n$/, '');
      if (!shown.endsWith('...')) continue; // a short article, shown whole
      const longer = shown.slice(0, -3) + ' ' + 'x'.repeat(3000); // the next word is cut as a whole
      const { parts } = r.apply({ article: longer, highlights: 'h' }, 1);
      expect(parts[0]).toBe(ex.prompt.replace(/\n$/, ''));
    }
  });
});

describe('Jinja2 details', () => {
  const one = (src: string, ctx: Record<string, unknown> = {}, rng = first) => compileTemplate(src).render(ctx, rng);

  it('prints Python values: None, True, floats, lists', () => {
    expect(one('{{ a }}|{{ b }}|{{ c }}|{{ d }}|{{ e }}', { a: null, b: true, c: 2.5, d: ['x', "y'z"], e: { k: 1 } })).toBe(
      `None|True|2.5|['x', "y'z"]|{'k': 1}`,
    );
    expect(one('{{ x }} {{ x / 2 }}', parseRow('{"x": 4.0}') as Record<string, unknown>)).toBe('4.0 2.0');
  });

  it('joins with no separator by default, as Jinja2 does', () => {
    expect(one("{{ ['a', 'b'] | join }}")).toBe('ab');
    expect(one("{{ ['a', 'b'] | join(', ') }}")).toBe('a, b');
    expect(one("{{ ['a', 'b'] | join(d='-') }}")).toBe('a-b');
    expect(one('{{ xs | join(attribute="k") }}', { xs: [{ k: 1 }, { k: 2 }] })).toBe('12');
  });

  it('keeps whitespace around blocks (no trim_blocks / lstrip_blocks)', () => {
    expect(one('{% if true %}\n  a\n{% endif %}\nb')).toBe('\n  a\n\nb');
  });

  it('has PromptSource helpers: choice (seeded), most_frequent, zip', () => {
    const src = '{{ xs | choice }}';
    const picks = new Set(Array.from({ length: 20 }, (_, i) => one(src, { xs: ['a', 'b', 'c', 'd'] }, () => (i % 4) / 4)));
    expect(picks).toEqual(new Set(['a', 'b', 'c', 'd']));
    expect(one('{{ xs | most_frequent | join(",") }}', { xs: ['a', 'b', 'b', 'a', 'c'] })).toBe('a,b');
    expect(one('{% for a, b in zip(xs, ys) %}{{ a }}={{ b }};{% endfor %}', { xs: [1, 2], ys: ['u', 'v'] })).toBe('1=u;2=v;');
  });

  it('protects ||| inside field values', () => {
    const f = join(tmp, 'pipes.yaml');
    writeFileSync(f, "dataset: d\ntemplates:\n  t1: !Template\n    answer_choices: null\n    id: t1\n    jinja: '{{a}} ||| {{b}}'\n    name: n\n    reference: ''\n");
    const t = loadTemplatesYaml(f).templates[0];
    expect(new PsRenderer(t, f, { truncate: true, seed: 0 }).apply({ a: 'x ||| y', b: 'z' }, 1).parts).toEqual(['x ||| y', 'z']);
  });
});

describe('PromptSource reader', () => {
  const EXAMPLES = join(__dirname, '../../examples/promptsource/ag_news');

  it('makes one task per template, instances from rows.jsonl beside templates.yaml', async () => {
    const tasks = await readAll(EXAMPLES);
    expect(tasks.map((t) => t.task.id)).toContain('promptsource/ag_news/classify_question_first');
    expect(tasks.length).toBe(7);
    const t = await materialize(tasks.find((x) => x.task.id.endsWith('/classify_question_first'))!);
    expect(t.definition).toBe('What label best describes this news article?\n{text}');
    expect(t.instances.length).toBe(8);
    expect(t.instances[2].outputs).toEqual(['Business']);
    expect(t.source.extra.template).toMatchObject({ name: 'classify_question_first', answer_choices: expect.stringContaining('|||') });
  });

  it('reads template-only (no rows) as tasks without instances', async () => {
    const tasks = await readAll(join(TEMPLATES, 'ag_news'));
    expect(tasks.every((t) => t.task.instances.length === 0)).toBe(true);
  });

  it('skips and reports rows that render no target, as P3 did', async () => {
    const dir = join(tmp, 'skip');
    const f = join(dir, 'templates.yaml');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(dir, { recursive: true });
    writeFileSync(f, "dataset: d\ntemplates:\n  t1: !Template\n    id: t1\n    jinja: '{% if keep %}{{a}} ||| {{b}}{% endif %}'\n    name: cond\n    reference: ''\n");
    writeFileSync(join(dir, 'rows.jsonl'), '{"keep": true, "a": "x", "b": "y"}\n{"keep": false, "a": "x", "b": "y"}\n');
    const skipped: Skipped[] = [];
    const [t] = await readAll(f, { onSkip: (s: Skipped) => skipped.push(s) });
    expect((await materialize(t)).instances.map((i) => i.input)).toEqual(['x']);
    expect(skipped).toEqual([{ file: join(dir, 'rows.jsonl'), line: 2, id: 'promptsource/d/cond', reason: 'renders 1 parts, not prompt ||| target' }]);
  });

  it('names file, line and field for bad YAML, a bad template, a missing field and a failing row', async () => {
    const dir = join(tmp, 'bad');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(dir, { recursive: true });
    const f = join(dir, 'templates.yaml');
    writeFileSync(f, 'dataset: d\ntemplates:\n  t1: !Template\n    jinja: "unterminated\n');
    let err = await readAll(f).catch((e) => e);
    expect(err).toBeInstanceOf(InputError);
    expect(err.message).toMatch(new RegExp(`^${f}:\\d+: malformed YAML`));

    writeFileSync(f, "dataset: d\ntemplates:\n  t1: !Template\n    id: t1\n    name: ok\n    jinja: 'fine {{a}} ||| {{b}}'\n  t2: !Template\n    id: t2\n    name: broken\n    jinja: '{{ a | no_such_filter }} ||| b'\n");
    err = await readAll(f).catch((e) => e);
    expect(err.message).toBe(`${f}:10: templates.t2.jinja: template 'broken': unsupported filter 'no_such_filter'`);

    writeFileSync(f, "dataset: d\ntemplates:\n  t1: !Template\n    id: t1\n    name: ok\n    reference: ''\n");
    err = await readAll(f).catch((e) => e);
    expect(err.message).toBe(`${f}:4: templates.t1.jinja: missing field`);

    writeFileSync(f, "dataset: d\ntemplates:\n  t1: !Template\n    id: t1\n    name: q\n    jinja: '{{ answers.text[0] }} ||| {{ b }}'\n");
    writeFileSync(join(dir, 'rows.jsonl'), '{"answers": {"text": ["a"]}, "b": "x"}\n{"b": "y"}\n');
    err = await readAll(f).catch((e) => e);
    expect(err.message).toBe(`${join(dir, 'rows.jsonl')}:2: template 'q': UndefinedError: 'answers' is undefined`);

    writeFileSync(join(dir, 'rows.jsonl'), '{"answers": {"text": ["a"]}, "b": "x"}\n{"b": "y",}\n');
    err = await readAll(f).catch((e) => e);
    expect(err.message).toBe(`${join(dir, 'rows.jsonl')}:2: malformed JSON at column 11: expected a property name in double quotes, found '}'`);
  });
});
