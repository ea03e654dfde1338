#!/usr/bin/env node
// What quantization does to a trained model's numbers: quantized folders of models/uit-tiny against
// its float32 folder, on the 46 held-out Ni-v2 tasks (the EVAL tasks of scripts/tiny_corpus.py, listed
// in models/uit-tiny/eval.json), through the CLI a user runs (docs/export.md, "Quality"):
//   - scoring: `uit score` on the UIT scoring pairs of every task (its own Definition, two positive
//     examples, each instance and its gold output): mean |delta mean CE| per pair;
//   - ranking: `uit score-instructions` on the first 24 tasks with 8 candidates each (its own
//     Definition and the Definitions of 7 other held-out tasks) and 10 instances: Spearman's rho of
//     each task's ranking against float32, and how often the pick is the same;
//   - generation: `uit generate --greedy` 64 tokens from each task's Definition cut to its first
//     12 words: tokens before the first difference, and positions with the same token.
// One model at a time, each in its own process. About 3 minutes a model on 2 cores with other work.
//
//   npm run build
//   node bench/quant-quality.js --base models/uit-tiny --model /tmp/q/int8 --model /tmp/q/int4 [--out bench/results/quant-quality.json]
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT, SHARED_DATA } from './lib/common.js';

const { values: args } = parseArgs({
  options: {
    base: { type: 'string', default: join(ROOT, 'models/uit-tiny') },
    model: { type: 'string', multiple: true, default: [] },
    out: { type: 'string' },
    tasks: { type: 'string', default: join(ROOT, 'models/uit-tiny/eval.json') },
    candidates: { type: 'string', default: '8' },
    'rank-tasks': { type: 'string', default: '24' },
    'rank-instances': { type: 'string', default: '10' },
    'new-tokens': { type: 'string', default: '64' },
    threads: { type: 'string', default: '1' },
  },
});
const UIT = join(ROOT, 'bin/uit.js');
const newTokens = Number(args['new-tokens']);
const work = mkdtempSync(join(tmpdir(), 'uit-quant-quality-'));

const { niv2 } = await import('../dist/formats/niv2.js');
const { uitSetup, uitPairs } = await import('../dist/perplexity/index.js');

// ------------------------------------------------------------ inputs, the same for every model
const names = JSON.parse(readFileSync(args.tasks, 'utf8')).perplexity.rows.map((r) => r.task);
// eval.json writes names with '_' where some file names have '-'.
const norm = (s) => s.replace(/[-_]/g, '_').replace(/\.json$/, '');
const files = new Map(readdirSync(join(SHARED_DATA, 'niv2/tasks')).map((f) => [norm(f), f]));
const tasks = [];
for (const n of names) {
  const file = files.get(norm(n));
  if (!file) throw new Error(`no task file for ${n} in ${join(SHARED_DATA, 'niv2/tasks')}`);
  for await (const lazy of niv2.read(join(SHARED_DATA, 'niv2/tasks', file), {})) tasks.push(lazy.task);
}
const k = Number(args.candidates);
const cands = tasks.map((t, i) => ({ task: t.id, candidates: [t.definition, ...Array.from({ length: k - 1 }, (_, j) => tasks[(i + 1 + j * 5) % tasks.length].definition)] }));
writeFileSync(join(work, 'candidates.jsonl'), cands.map((c) => JSON.stringify(c)).join('\n') + '\n');
const pairs = tasks.flatMap((t) => uitPairs(uitSetup(t, { instances: 20 }), t.definition).map((p, j) => ({ id: `${t.id}#${j}`, prefix: p.prefix, target: p.target })));
writeFileSync(join(work, 'pairs.jsonl'), pairs.map((p) => JSON.stringify(p)).join('\n') + '\n');
const prompts = tasks.map((t) => ({ prompt: `Definition: ${t.definition.split(/\s+/).slice(0, 12).join(' ')}` }));
writeFileSync(join(work, 'prompts.jsonl'), prompts.map((p) => JSON.stringify(p)).join('\n') + '\n');
const rankFiles = tasks.slice(0, Number(args['rank-tasks'])).map((t) => t.source.file);

const uit = (cmdArgs) => execFileSync(process.execPath, [UIT, ...cmdArgs], { encoding: 'utf8', maxBuffer: 1 << 28, stdio: ['ignore', 'pipe', 'pipe'] });
const jsonl = (text) => text.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));

function measure(dir) {
  const common = ['-m', dir, '--threads', args.threads];
  const t0 = performance.now();
  const scores = jsonl(uit(['score', join(work, 'pairs.jsonl'), ...common, '--json', '--no-cache']));
  const ranks = jsonl(uit(['score-instructions', ...rankFiles, ...common, '--candidates', join(work, 'candidates.jsonl'), '--instances', args['rank-instances'], '--json', '--no-cache']));
  const gen = JSON.parse(uit(['generate', ...common, '--input', join(work, 'prompts.jsonl'), '--greedy', '-n', String(newTokens), '--json']));
  return { dir, seconds: (performance.now() - t0) / 1000, scores, ranks, gen };
}

/** Spearman's rho of two score lists (ties get their mean rank). */
function spearman(a, b) {
  const rank = (xs) => {
    const idx = xs.map((x, i) => [x, i]).sort((p, q) => p[0] - q[0]);
    const r = new Array(xs.length);
    for (let i = 0; i < idx.length; ) {
      let j = i;
      while (j + 1 < idx.length && idx[j + 1][0] === idx[i][0]) j++;
      for (let t = i; t <= j; t++) r[idx[t][1]] = (i + j) / 2;
      i = j + 1;
    }
    return r;
  };
  const ra = rank(a);
  const rb = rank(b);
  const m = (xs) => xs.reduce((s, x) => s + x, 0) / xs.length;
  const ma = m(ra);
  const mb = m(rb);
  let num = 0;
  let da = 0;
  let db = 0;
  for (let i = 0; i < ra.length; i++) {
    num += (ra[i] - ma) * (rb[i] - mb);
    da += (ra[i] - ma) ** 2;
    db += (rb[i] - mb) ** 2;
  }
  return num / Math.sqrt(da * db);
}

const genRows = (g) => [...g.results].sort((a, b) => a.prompt_index - b.prompt_index).map((r) => r.tokens);

function compare(base, q) {
  const dce = [];
  for (let i = 0; i < base.scores.length; i++) {
    const a = base.scores[i].mean_ce;
    const b = q.scores[i].mean_ce;
    if (a !== null && b !== null) dce.push(Math.abs(a - b));
  }
  const rhos = [];
  let samePick = 0;
  for (let i = 0; i < base.ranks.length; i++) {
    const a = base.ranks[i].candidates.map((c) => c.mean_ce);
    const b = q.ranks[i].candidates.map((c) => c.mean_ce);
    rhos.push(spearman(a, b));
    if (base.ranks[i].pick === q.ranks[i].pick) samePick++;
  }
  const ga = genRows(base.gen);
  const gb = genRows(q.gen);
  const firstDiff = [];
  let same = 0;
  let total = 0;
  for (let i = 0; i < ga.length; i++) {
    const n = Math.max(ga[i].length, gb[i].length);
    let d = 0;
    while (d < n && ga[i][d] === gb[i][d]) d++;
    firstDiff.push(d);
    for (let t = 0; t < n; t++) if (ga[i][t] === gb[i][t]) same++;
    total += n;
  }
  const mean = (xs) => xs.reduce((s, x) => s + x, 0) / xs.length;
  const sorted = [...dce].sort((x, y) => x - y);
  return {
    model: q.dir,
    quantization: JSON.parse(readFileSync(join(q.dir, 'config.json'), 'utf8')).uit_quantization ?? null,
    seconds: q.seconds,
    scoring: { pairs: dce.length, mean_abs_delta_mean_ce: mean(dce), median: sorted[Math.floor(sorted.length / 2)], max: sorted[sorted.length - 1], base_mean_ce: mean(base.scores.filter((s) => s.mean_ce !== null).map((s) => s.mean_ce)) },
    ranking: { tasks: rhos.length, candidates: k, mean_spearman: mean(rhos), min_spearman: Math.min(...rhos), same_pick: samePick },
    greedy: { prompts: ga.length, new_tokens: newTokens, mean_tokens_before_first_difference: mean(firstDiff), all_identical: firstDiff.filter((d, i) => d >= Math.max(ga[i].length, gb[i].length)).length, same_token_fraction: same / total },
  };
}

const load0 = loadavg();
try {
  process.stderr.write(`base ${args.base}\n`);
  const base = measure(resolve(args.base));
  const rows = [];
  for (const m of args.model) {
    process.stderr.write(`model ${m}\n`);
    rows.push(compare(base, measure(resolve(m))));
  }
  const result = { date: new Date().toISOString(), base: args.base, tasks: tasks.length, pairs: pairs.length, rank_tasks: rankFiles.length, rank_instances: Number(args['rank-instances']), candidates: k, base_seconds: base.seconds, load_average: { start: load0, end: loadavg() }, rows };
  const f = (x, d = 4) => (typeof x === 'number' ? x.toFixed(d) : String(x));
  const lines = [`${tasks.length} held-out tasks: ${pairs.length} scoring pairs; rankings of ${rankFiles.length} tasks x ${k} candidates x ${args['rank-instances']} instances; ${newTokens} greedy tokens from ${prompts.length} prompts; base ${basename(args.base)}`];
  lines.push(`${'model'.padEnd(36)} ${'|dCE| mean'.padStart(10)} ${'median'.padStart(8)} ${'max'.padStart(8)} ${'rho'.padStart(7)} ${'min rho'.padStart(8)} ${'pick'.padStart(6)} ${'1st diff'.padStart(9)} ${'same tok'.padStart(9)} ${'all 64'.padStart(7)}`);
  for (const r of rows) {
    lines.push(`${basename(r.model).padEnd(36)} ${f(r.scoring.mean_abs_delta_mean_ce).padStart(10)} ${f(r.scoring.median).padStart(8)} ${f(r.scoring.max).padStart(8)} ${f(r.ranking.mean_spearman, 3).padStart(7)} ${f(r.ranking.min_spearman, 2).padStart(8)} ${`${r.ranking.same_pick}/${r.ranking.tasks}`.padStart(6)} ${f(r.greedy.mean_tokens_before_first_difference, 1).padStart(9)} ${f(r.greedy.same_token_fraction, 3).padStart(9)} ${`${r.greedy.all_identical}/${r.greedy.prompts}`.padStart(7)}`);
  }
  result.table = lines;
  console.log(lines.join('\n'));
  if (args.out) writeFileSync(args.out, `${JSON.stringify(result, null, 1)}\n`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
