import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { materialize, type LazyTask, type Skipped } from '../../src/formats/api.js';
import { compileTemplate } from '../../src/formats/jinja-py.js';
import { loadTemplatesYaml, promptsource, PsRenderer, type PsTemplate } from '../../src/formats/promptsource.js';
import { parseRow } from '../../src/io/located-json.js';
import { inferFields, syntheticRow, toJsonText, VARIANTS, type Shape, type Variant } from './ps-rows.js';
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
  // rows travel as JSON text, so floats written "1.0" stay floats in both engines
  type Case = { file: string; id: string; rowText: string; name: string; scenario: string; t: PsTemplate };
  type Ref = { parts?: string[]; choices?: string[] | null; error?: string };
  const fieldsOf = new Map<PsTemplate, Map<string, Shape>>();
  const synthetic = (variant: Variant) => (_ds: string, t: PsTemplate) => {
    let fields = fieldsOf.get(t);
    if (!fields) fieldsOf.set(t, (fields = inferFields([t.jinja, ...(t.answer_choices === null ? [] : [t.answer_choices])])));
    return toJsonText(syntheticRow(fields, variant));
  };
  const scenarios: Record<string, (dataset: string, t: PsTemplate) => string | undefined> = {
    rows: (ds) => (ROWS[ds] ? JSON.stringify(ROWS[ds]) : undefined),
    empty: () => '{}',
    ...Object.fromEntries(VARIANTS.map((v) => [`synthetic-${v}`, synthetic(v)])),
  };
  let results: Map<string, Array<{ c: Case; ref: Ref }>> | null = null;
  // one Python run for all scenarios
  function run(scenario: string): Array<{ c: Case; ref: Ref }> {
    if (!results) {
      const cases: Case[] = [];
      for (const [name, rowFor] of Object.entries(scenarios)) {
        for (const { file, dataset, templates } of allTemplates()) {
          for (const t of templates) {
            const rowText = rowFor(dataset, t);
            if (rowText !== undefined) cases.push({ file, id: t.id, rowText, name: `${dataset} / ${t.name}`, scenario: name, t });
          }
        }
      }
      const input = `[${cases.map((c) => `{"file":${JSON.stringify(c.file)},"id":${JSON.stringify(c.id)},"row":${c.rowText}}`).join(',')}]`;
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

  /** Compares every case of a scenario; returns how many there were and how many rendered prompt ||| target. */
  function compare(scenario: string): { cases: number; rendered: number } {
    const list = run(scenario);
    let rendered = 0;
    for (const { c, ref } of list) {
      const ours = render(c.file, c.t, parseRow(c.rowText) as Record<string, unknown>);
      if ('error' in ours || ref.error) {
        // both fail (messages differ between engines), or neither
        expect({ ours: 'error' in ours ? 'error' : ours, ref: ref.error ? 'error' : ref }, `${c.name} ${c.rowText}`).toEqual({ ours: 'error', ref: 'error' });
      } else {
        expect({ parts: ours.parts, choices: ours.choices }, `${c.name} ${c.rowText}`).toEqual(ref);
        if (ours.parts.length === 2 && ours.parts[0]) rendered++;
      }
    }
    return { cases: list.length, rendered };
  }

  it('with the hand-made rows (656 templates)', () => {
    expect(compare('rows').cases).toBe(656);
  });

  it('with an empty row on all 1812 templates (Undefined: same output or both fail)', () => {
    expect(compare('empty').cases).toBe(1812);
  });

  // Rows made for each template from the fields it reads (test/formats/ps-rows.ts): lists of
  // three, empty strings / lists / zeros, floats (0.45, 2.675, "1e3"), one-item lists, all None.
  // `rendered` keeps the rows honest: most of them must reach prompt ||| target.
  it.each([
    ['full', 1350],
    ['empty', 1350],
    ['float', 1500],
    ['one', 1500],
    ['none', 850],
  ] as const)('with synthetic rows on all 1812 templates: %s', (variant, minRendered) => {
    const { cases, rendered } = compare(`synthetic-${variant}`);
    expect(cases).toBe(1812);
    expect(rendered).toBeGreaterThan(minRendered);
  });

  /**
   * Renders each expression as a template (`expr ||| x`) on the row in both engines; failures must
   * fail in both. `truncate: false` leaves out P3's `| string | truncate` after every expression.
   */
  function againstPython(name: string, exprs: string[], row: Record<string, unknown>, rowText = JSON.stringify(row), truncate = true): void {
    const yaml = ['dataset: extra', 'templates:', ...exprs.flatMap((e, i) => [`  t${i}: !Template`, `    id: t${i}`, `    name: n${i}`, `    jinja: ${JSON.stringify(e + ' ||| x')}`])].join('\n') + '\n';
    const file = join(tmp, `${name}.yaml`);
    writeFileSync(file, yaml);
    const templates = loadTemplatesYaml(file).templates;
    const input = `[${templates.map((t) => `{"file":${JSON.stringify(file)},"id":${JSON.stringify(t.id)},"truncate":${truncate},"row":${rowText}}`).join(',')}]`;
    const refs = JSON.parse(execFileSync(python!, [join(__dirname, 'ps_reference.py')], { input }).toString()) as Ref[];
    templates.forEach((t, i) => {
      const row = parseRow(rowText) as Record<string, unknown>;
      let ours: ReturnType<typeof render>;
      try {
        ours = new PsRenderer(t, file, { truncate, seed: 0, rng: first }).apply(row, 1);
      } catch (err) {
        ours = { error: (err as Error).message };
      }
      if (refs[i].error) expect('error' in ours ? 'error' : ours, `${exprs[i]}: Python fails with ${refs[i].error}`).toBe('error');
      else expect('error' in ours ? ours : { parts: ours.parts, choices: ours.choices }, exprs[i]).toEqual(refs[i]);
    });
  }

  it('compares lists, tuples and dicts by value, as Python does', () => {
    againstPython('equality', [
      '{{ [] == [] }} {{ x != [] }} {{ e != [] }} {{ e == [] }} {{ x == y }} {{ x == ["a"] }}',
      '{{ {"a": 1} == {"a": 1} }} {{ {"a": 1, "b": [2]} == {"b": [2.0], "a": 1} }} {{ d == {"k": [1, 2]} }} {{ d != {"k": [1]} }}',
      '{{ [1, [2, "x"]] == [1.0, [2, "x"]] }} {{ (1, 2) == (1, 2) }} {{ (1, 2) == [1, 2] }} {{ [x] == [y] }}',
      '{{ true == 1 }} {{ 1 == 1.0 }} {{ "" == 0 }} {{ "1" == 1 }} {{ none == undefined_name }} {{ f == 2 }} {{ f == 2.0 }}',
      '{% if answers.text != [] %}{{ answers.text[0] }}{% else %}unanswerable{% endif %} {{ "yes" if empty.text == [] else "no" }}',
      '{{ [1, 2] in [[1, 2], [3]] }} {{ {"a": 1} in [{"a": 1}] }} {{ [3] != [3] }}',
      '{{ [1, 2] < [1, 3] }} {{ "b" > "a" }} {{ (1, "a") <= (1, "b") }} {{ [2] >= [1, 9] }} {{ [1] < ["a"] }}',
    ], {}, '{"x": ["a", "b"], "y": ["a", "b"], "e": [], "d": {"k": [1, 2]}, "f": 2.0, "answers": {"text": ["Paris"]}, "empty": {"text": []}}', false);
  });

  it("rounds as Python's round() and Jinja2's round filter do", () => {
    const values = ['0.45', '0.05', '2.675', '0.15', '2.5', '3.5', '-0.45', '-2.5', '1.0', '3', '-7', '1234.5', '0.1', '1e300', '1e-300', '5e-324', '0.125', '0.375'];
    const exprs = values.map((v) => `{{ ${v.startsWith('-') || v.includes('e') ? `v${values.indexOf(v)}` : v} | round }} {{ v${values.indexOf(v)} | round(1) }} {{ v${values.indexOf(v)} | round(2) }} {{ v${values.indexOf(v)} | round(-1) }} {{ v${values.indexOf(v)} | round(17) }}`);
    exprs.push(
      '{{ v0 | round(1, "floor") }} {{ v0 | round(1, "ceil") }} {{ v2 | round(2, "floor") }} {{ v2 | round(2, "ceil") }} {{ v9 | round(1, "ceil") }} {{ v10 | round(-1, "floor") }}',
      '{{ true | round }} {{ (5 * v0) | round }} {{ ((5 * v1) | round) / 5 }} {{ v0 | round(1) | string }} {{ v0 | round(method="ceil") }}',
      '{{ v0 | round(1, "nearest") }}',
      '{{ "0.45" | round(1) }}',
    );
    againstPython('round', exprs, {}, `{${values.map((v, i) => `"v${i}": ${v}`).join(', ')}}`, false);
  });

  it('assigns namespace attributes ({% set ns.attr = ... %})', () => {
    againstPython('namespace', [
      '{% set ns = namespace(found=false, items=[]) %}{% for x in xs %}{% if x == "b" %}{% set ns.found = true %}{% endif %}{{ ns.items.append(x) or "" }}{% endfor %}{{ ns.found }} {{ ns.items }}',
      '{% set ns = namespace(n=0) %}{% for x in xs %}{% set ns.n = ns.n + loop.index %}{% endfor %}{{ ns.n }}',
      '{% set answer_list = namespace(value=[]) %}{% set answer_list.value = answer_list.value + xs[:2] %}{{ answer_list.value | join(", ") }}',
      '{% set d = {} %}{% set d.x = 1 %}{{ d }}',
    ], { xs: ['a', 'b', 'c'] }, undefined, false);
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
    againstPython('extra', exprs, { xs: ['a', 'b', 'c'], ys: [1.25, 3, 2], s: 'hello', t: 'one\n\ntwo\n', d: { b: 2, a: 1 } });
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
