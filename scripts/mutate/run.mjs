#!/usr/bin/env node
// `npm run mutate [-- MODULE...] [-- --since REF]`: Stryker, one module at a time (the modules
// and their tests: scripts/mutate/modules.mjs; the settings: stryker.config.mjs).
//   npm run mutate                   every module (slow: see docs/testing.md for the times)
//   npm run mutate -- serve          one module
//   npm run mutate -- --since main   only the source lines changed since main (committed or not)
// Prints each module's mutation score and wall time; writes reports/mutation/<module>.{html,json}.
// Exits 1 when a module scores under 90%, or when a changed line has a surviving mutant.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MODULES } from './modules.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
const BREAK = 90;

function usage(message) {
  console.error(`${message}\nusage: npm run mutate [-- MODULE...] [-- --since REF]\nmodules: ${Object.keys(MODULES).join(', ')}`);
  process.exit(2);
}

const args = process.argv.slice(2);
let since;
const names = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--since') since = args[++i] ?? usage('--since needs a git ref');
  else if (args[i].startsWith('--since=')) since = args[i].slice('--since='.length);
  else if (args[i] === '-h' || args[i] === '--help') usage('Mutation testing with Stryker, module by module.');
  else if (MODULES[args[i]]) names.push(args[i]);
  else usage(`unknown module or option: ${args[i]}`);
}

function git(...a) {
  const r = spawnSync('git', a, { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0) usage(`git ${a.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** A glob of modules.mjs as a RegExp: `**\/` any folders, `*` any name part. */
function globRegExp(glob) {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*\*\//g, '\u0000').replace(/\*/g, '[^/]*').replace(/\u0000/g, '(?:.*/)?');
  return new RegExp(`^${body}$`);
}

/** Whether a module mutates `file` (its patterns in order; `!` excludes; `file:range` counts as the file). */
function covers(mod, file) {
  let yes = false;
  for (const p of mod.mutate) {
    const neg = p.startsWith('!');
    const glob = (neg ? p.slice(1) : p).replace(/:[^/]*$/, '');
    if (globRegExp(glob).test(file)) yes = !neg;
  }
  return yes;
}

/** Source lines added or changed since the merge base with `ref`, working tree included: file -> [start, end][]. */
function changedLines(ref) {
  const base = git('merge-base', ref, 'HEAD').trim();
  const out = new Map();
  let file;
  for (const line of git('diff', '-U0', '--no-color', base, '--', 'src').split('\n')) {
    const f = /^\+\+\+ b\/(.+)$/.exec(line);
    if (f) file = f[1];
    else if (line.startsWith('+++ ')) file = undefined; // deleted file
    const h = /^@@ -\S+ \+(\d+)(?:,(\d+))? @@/.exec(line);
    if (h && file && (h[2] === undefined || Number(h[2]) > 0)) {
      const start = Number(h[1]);
      const count = h[2] === undefined ? 1 : Number(h[2]);
      if (!out.has(file)) out.set(file, []);
      out.get(file).push([start, start + count - 1]);
    }
  }
  // new files the diff does not list until they are added
  for (const f of git('ls-files', '--others', '--exclude-standard', '--', 'src').split('\n').filter(Boolean)) {
    out.set(f, [[1, readFileSync(join(ROOT, f), 'utf8').split('\n').length]]);
  }
  return out;
}

const plan = [];
if (since) {
  const changed = changedLines(since);
  for (const [name, mod] of Object.entries(MODULES)) {
    if (names.length && !names.includes(name)) continue;
    const specs = [...changed].filter(([f]) => covers(mod, f)).flatMap(([f, ranges]) => ranges.map(([a, b]) => `${f}:${a}-${b}`));
    if (specs.length) plan.push({ name, only: specs });
  }
  if (plan.length === 0) {
    console.log(`No changed source lines since ${since} in the mutated modules (${Object.keys(MODULES).join(', ')}).`);
    process.exit(0);
  }
} else {
  for (const name of names.length ? names : Object.keys(MODULES)) plan.push({ name });
}

const results = [];
for (const step of plan) {
  console.log(`\n=== ${step.name}${step.only ? `: ${step.only.join(' ')}` : ''}`);
  const env = {
    ...process.env,
    NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import ${join(ROOT, 'scripts/mutate/typescript-classic.mjs')}`.trim(),
    UIT_MUTATE_MODULE: step.name,
    ...(step.only ? { UIT_MUTATE_ONLY: JSON.stringify(step.only) } : {}),
  };
  const started = Date.now();
  const r = spawnSync(join(ROOT, 'node_modules/.bin/stryker'), ['run', 'stryker.config.mjs'], { cwd: ROOT, env, stdio: 'inherit' });
  const seconds = Math.round((Date.now() - started) / 1000);
  if (r.status !== 0) {
    results.push({ name: step.name, seconds, error: `stryker exited with ${r.status ?? r.signal}` });
    continue;
  }
  const report = JSON.parse(readFileSync(join(ROOT, `reports/mutation/${step.only ? 'since-' : ''}${step.name}.json`), 'utf8'));
  const count = { Killed: 0, Timeout: 0, Survived: 0, NoCoverage: 0, CompileError: 0, RuntimeError: 0, Ignored: 0 };
  const survivors = [];
  for (const [file, { mutants }] of Object.entries(report.files)) {
    for (const m of mutants) {
      count[m.status] = (count[m.status] ?? 0) + 1;
      if (m.status === 'Survived' || m.status === 'NoCoverage') survivors.push(`${file}:${m.location.start.line} ${m.mutatorName} (${m.status})`);
    }
  }
  const detected = count.Killed + count.Timeout;
  const valid = detected + count.Survived + count.NoCoverage;
  results.push({ name: step.name, seconds, score: valid ? (100 * detected) / valid : 100, valid, detected, survivors, since: Boolean(step.only) });
}

console.log('\nmodule               score   killed/valid  wall');
let failed = false;
for (const r of results) {
  if (r.error) {
    failed = true;
    console.log(`${r.name.padEnd(20)} ${r.error} after ${r.seconds}s`);
    continue;
  }
  const low = r.since ? r.survivors.length > 0 : r.score < BREAK;
  failed ||= low;
  console.log(`${r.name.padEnd(20)} ${r.score.toFixed(1).padStart(5)}%  ${`${r.detected}/${r.valid}`.padStart(12)}  ${r.seconds}s${low ? '  <- below 90% or a changed line has survivors' : ''}`);
  for (const s of r.survivors) console.log(`    ${s}`);
}
console.log('\nReports: reports/mutation/*.html. Survivors judged equivalent are listed in docs/testing.md.');
process.exit(failed ? 1 : 0);
