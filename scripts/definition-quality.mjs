// Counts garbled or empty heuristic Definitions (`uit convert --method heuristic`) on the shared
// PromptSource and P3 data, with a fixed, mechanical criterion, so that a change to
// src/transfer/heuristic.ts or template-text.ts can be measured before and after.
//
//   npm run build && node scripts/definition-quality.mjs [--lib DIR] [--json FILE] [--data DIR]
//
// --lib: a built uit (its dist/ folder; default this checkout's), so an older build can be
// measured with the same criterion. --json: every Definition with its flags, for comparing runs.
//
// The sets (none of them is used by a test that checks Definitions):
//   promptsource-heldout  templates of the PromptSource datasets without hand-made rows in
//                         test/fixtures/formats/promptsource-rows.json (templates only, no rows)
//   promptsource-dev      the templates of the 83 datasets with hand-made rows (no rows either)
//   p3-heldout            the ../shared/data/p3_rendered files of those held-out datasets
//   p3-dev                the other P3 files, except the four that tests name
//
// The criterion. A Definition is EMPTY when it does not say what to do:
//   - nothing is left once the "In this task, you are given ..." sentence is removed, or what
//     is left has fewer than 3 words, or is the generic "Write the output for the given input.";
// and GARBLED when any of these holds:
//   - repeated:    a phrase of 2+ words repeated in a list ("the options, the options"), outside quotes;
//   - article:     two articles in a row ("a the input", "the a");
//   - empty-slot:  an empty quotation or bracket ("", '', (), []) or a leftover {placeholder};
//   - unfinished:  a sentence that ends on a word that cannot end one, an article, preposition,
//                  conjunction, auxiliary or possessive, a copula in a clause no wh-word opens,
//                  or "give it" / "rate this" (a completion prompt cut off: "So I would like to
//                  give it.", "My rating is."; not "Rate how similar they are.");
//   - leak (P3):   a word of 3+ characters that is neither in the file's PromptSource template
//                  (jinja and answer_choices, found by name in ../shared/data) nor in the
//                  heuristic's own phrases (a row's value kept as if it were template text);
//   - options-twice: every answer option (2+ of them, the template's answer_choices when fixed
//                  text) appears twice or more, as a whole word.
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i === -1 ? dflt : args[i + 1];
};
const lib = resolve(opt('--lib', join(here, '..', 'dist')));
const data = resolve(opt('--data', join(here, '..', '..', 'shared', 'data')));
const jsonOut = opt('--json', null);
if (!existsSync(join(lib, 'index.js'))) {
  console.error(`${join(lib, 'index.js')} is missing: build first (npm run build) or pass --lib DIR`);
  process.exit(2);
}
const uit = (await import(pathToFileURL(join(lib, "index.js")).href)).formats;

// ---------------------------------------------------------------------------------------------
// the criterion

const ARTICLE = /\b(a|an|the) (a|an|the)\b/i;
const REPEATED = /\b(\w+(?: \w+)+)(?:,? (?:or |and )?\1\b){1,}/i;
const EMPTY_SLOT = /""|''|“”|\(\s*\)|\[\s*\]|\{[^{}\s]*\}/;
// words a sentence cannot end on (articles, prepositions, conjunctions, auxiliaries, possessives;
// a copula only when no wh-word opens the clause: "how similar they are." is whole)
const DANGLING = new Set(
  'a an the of to in on at by for with from as and or but would will shall should can could may might must my your our their his her its than into onto'.split(' '),
);
const COPULAS = new Set('is are was were be been being am'.split(' '));
const WH = /\b(how|what|which|who|whom|whose|where|when|why|whether)\b/i;
// ... nor on "give it" / "rate this" (what to give it is the answer)
const DANGLING_END = /\b(give|gives|rate|rates)\s+(it|this|them)$/i;
// the heuristic's own words (any version measured): never counted as leaked
const OWN = new Set(
  'in this task you are given answer with one of the options option write produce output for input inputs a an and or given shown listed choose from following below above text complete each which what is it'.split(' '),
);

function sentences(text) {
  // not inside an abbreviation ("A.M. or P.M.")
  return text.split(/(?<=[.?!])(?<!\.[A-Z]\.)\s+/).filter((s) => s.trim());
}

const words = (s) => (s.toLowerCase().match(/[\p{L}\p{N}][\p{L}\p{N}_.'’-]*[\p{L}\p{N}]|[\p{L}\p{N}]/gu) ?? []).map((w) => w.replace(/[.]+$/, ''));

function flags(definition, { template, choices }) {
  const out = [];
  const rest = sentences(definition).filter((s) => !/^In this task, you are given\b/.test(s));
  const restText = rest.join(' ');
  if (rest.length === 0 || words(restText).length < 3 || /^Write the output for the given input\.$/.test(restText.trim())) out.push('empty');
  if (REPEATED.test(definition.replace(/"[^"]*"|“[^”]*”/g, '""'))) out.push('repeated'); // quoted text is the template's
  if (ARTICLE.test(definition)) out.push('article');
  if (EMPTY_SLOT.test(definition)) out.push('empty-slot');
  for (const s of rest) {
    const body = s.trim().replace(/\s*[.]$/, '');
    const lastToken = (/(\S+)$/.exec(body)?.[1] ?? '').replace(/["'“”’)\]]+$/, '');
    if (/^[A-Z]$/.test(lastToken)) continue; // an option letter or "sentence A", not the article
    const last = lastToken.toLowerCase().replace(/[^a-z]/g, '');
    if (s.trim().endsWith('.') && (DANGLING.has(last) || DANGLING_END.test(body) || (COPULAS.has(last) && !WH.test(body.split(/[;:]\s/).pop())))) {
      out.push('unfinished');
      break;
    }
  }
  if (template !== undefined) {
    const known = new Set(words(template));
    const leaked = words(definition).filter((w) => w.length >= 3 && !known.has(w) && !OWN.has(w) && !/^\d+$/.test(w));
    // a field's name split into words ("question stem") is the template's too
    const fieldWords = new Set(words(template.replace(/[_.]/g, ' ')));
    const really = leaked.filter((w) => !w.split(/[_.'’-]/).every((p) => fieldWords.has(p) || OWN.has(p) || p === ''));
    if (really.length) out.push(`leak:${[...new Set(really)].slice(0, 3).join(',')}`);
  }
  if (choices && choices.length >= 2) {
    const esc = (c) => c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const count = (c) => (definition.match(new RegExp(`(?<![\\p{L}\\p{N}])${esc(c)}(?![\\p{L}\\p{N}])`, 'giu')) ?? []).length;
    if (choices.every((c) => c.trim() && count(c.trim()) >= 2)) out.push('options-twice');
  }
  return out;
}

const GARBLED = ['repeated', 'article', 'empty-slot', 'unfinished', 'leak', 'options-twice'];
const isGarbled = (f) => f.some((x) => GARBLED.includes(x.split(':')[0]));

// ---------------------------------------------------------------------------------------------
// the data

function yamlFiles(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...yamlFiles(p));
    else if (name === 'templates.yaml') out.push(p);
  }
  return out;
}

function filesNamedByTests(dir) {
  const names = new Set();
  const walk = (d) => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else if (/\.(ts|py|mjs)$/.test(n)) for (const m of readFileSync(p, 'utf8').matchAll(/p3_rendered\/([\w.-]+?)\.jsonl/g)) names.add(m[1]);
    }
  };
  walk(dir);
  return names;
}

const TEMPLATES = join(data, 'promptsource', 'templates');
const fixture = join(here, '..', 'test', 'fixtures', 'formats', 'promptsource-rows.json');
if (!existsSync(fixture)) {
  console.error(`${fixture} is missing: run this from a checkout of uit (it splits the data by the tests' rows)`);
  process.exit(2);
}
const rowsFixture = JSON.parse(readFileSync(fixture, 'utf8'));
const norm = (s) => s.replace(/[^A-Za-z0-9]/g, '_');
const byP3Name = new Map(); // P3 file name -> template source text
const datasetKeys = []; // [P3 name prefix, dataset key]
const results = [];

for (const file of yamlFiles(TEMPLATES)) {
  const key = file.slice(TEMPLATES.length + 1, -'/templates.yaml'.length);
  const set = key in rowsFixture ? 'promptsource-dev' : 'promptsource-heldout';
  const { templates } = uit.loadTemplatesYaml(file);
  datasetKeys.push([`${norm(key)}_`, key]);
  for (const t of templates) byP3Name.set(`${norm(key)}_${norm(t.name)}`, `${t.jinja}\n${t.answer_choices ?? ''}`);
  for await (const lazy of uit.promptsource.read(file, {})) {
    const { definition } = uit.heuristicDefinition(lazy.task);
    const t = lazy.task.source.extra.template;
    // the choices, when the template's answer_choices is fixed text
    const choices = t.answer_choices && !/\{[{%]/.test(t.answer_choices) ? t.answer_choices.split('|||').map((c) => c.trim()) : null;
    results.push({ set, id: lazy.task.id, definition, flags: flags(definition, { choices }) });
  }
}

const named = filesNamedByTests(join(here, '..', 'test'));
const p3dir = join(data, 'p3_rendered');
for (const f of readdirSync(p3dir).sort()) {
  const name = f.replace(/\.jsonl$/, '');
  if (named.has(name)) continue;
  for await (const lazy of uit.p3.read(join(p3dir, f), {})) {
    const { definition } = uit.heuristicDefinition(lazy.task);
    const key = datasetKeys.filter(([prefix]) => name.startsWith(prefix)).sort((a, b) => b[0].length - a[0].length)[0]?.[1];
    const set = key === undefined || !(key in rowsFixture) ? 'p3-heldout' : 'p3-dev';
    results.push({ set, id: lazy.task.id, definition, flags: flags(definition, { template: byP3Name.get(name) }) });
  }
}

// ---------------------------------------------------------------------------------------------
// the counts

const sets = [...new Set(results.map((r) => r.set))];
console.log(`lib: ${lib}`);
console.log('set                   definitions  garbled  empty  either   ' + GARBLED.join(' '));
for (const set of sets) {
  const rs = results.filter((r) => r.set === set);
  const n = (pred) => rs.filter(pred).length;
  const per = GARBLED.map((g) => String(n((r) => r.flags.some((f) => f.split(':')[0] === g))).padStart(g.length));
  console.log(
    `${set.padEnd(22)}${String(rs.length).padStart(11)}${String(n((r) => isGarbled(r.flags))).padStart(9)}${String(n((r) => r.flags.includes('empty'))).padStart(7)}${String(
      n((r) => isGarbled(r.flags) || r.flags.includes('empty')),
    ).padStart(8)}   ${per.join(' ')}`,
  );
}
if (jsonOut) writeFileSync(jsonOut, JSON.stringify(results, null, 1) + '\n');
