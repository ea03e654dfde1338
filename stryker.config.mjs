// Mutation testing with Stryker (docs/testing.md). Run it through `npm run mutate`
// (scripts/mutate/run.mjs), which picks the module and passes it here in UIT_MUTATE_MODULE, and in
// UIT_MUTATE_ONLY the changed line ranges for `npm run mutate -- --since main`; it also preloads
// scripts/mutate/typescript-classic.mjs, which gives Stryker the TypeScript API it needs.
import { existsSync, mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MODULES } from './scripts/mutate/modules.mjs';

const ROOT = dirname(fileURLToPath(import.meta.url));
const name = process.env.UIT_MUTATE_MODULE;
const mod = MODULES[name];
if (!mod) throw new Error(`UIT_MUTATE_MODULE must be one of ${Object.keys(MODULES).join(', ')} (run \`npm run mutate\`)`);

/** `file:fn` names a function's lines (they move as the file changes); anything else is Stryker's own. */
function mutateSpec(spec) {
  const m = /^(.+\.ts):([A-Za-z_$][\w$]*)$/.exec(spec);
  if (!m) return spec;
  const lines = readFileSync(resolve(ROOT, m[1]), 'utf8').split('\n');
  const start = lines.findIndex((l) => new RegExp(`\\bfunction ${m[2]}\\(`).test(l));
  if (start < 0) throw new Error(`${m[1]}: no function ${m[2]}`);
  const indent = /^\s*/.exec(lines[start])[0];
  const end = lines.findIndex((l, i) => i > start && l === `${indent}}`);
  return `${m[1]}:${start + 1}-${end + 1}`;
}

// The tests read ../shared/data relative to the checkout; in Stryker's sandbox
// (.stryker-tmp/sandbox-*) that is .stryker-tmp/shared. Stryker removes only the sandbox.
const tmp = resolve(ROOT, '.stryker-tmp');
mkdirSync(tmp, { recursive: true });
if (!existsSync(resolve(tmp, 'shared')) && existsSync(resolve(ROOT, '../shared'))) symlinkSync(resolve(ROOT, '../shared'), resolve(tmp, 'shared'));

const only = process.env.UIT_MUTATE_ONLY ? JSON.parse(process.env.UIT_MUTATE_ONLY) : undefined;
const report = `reports/mutation/${only ? 'since-' : ''}${name}`;

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'vitest',
  // the module's test files only (vitest.mutate.config.ts says why not Stryker's testFiles)
  vitest: { configFile: 'vitest.mutate.config.ts', related: false },
  mutate: only ?? mod.mutate.map(mutateSpec),
  // Each mutant runs only the tests that covered it in the first (dry) run.
  coverageAnalysis: 'perTest',
  checkers: ['typescript'],
  // src only: a mutant that breaks src's types is caught; checking the tests too costs seconds a mutant
  tsconfigFile: 'tsconfig.build.json',
  typescriptChecker: { prioritizePerformanceOverAccuracy: true },
  // The team's machines are shared: one test runner; a busy machine gets room before a timeout.
  concurrency: 1,
  timeoutMS: 20_000,
  timeoutFactor: 2,
  dryRunTimeoutMinutes: 20,
  ignorePatterns: ['dist', 'bench/models', 'bench/results', 'uit-demo-out', 'tmp', 'coverage'],
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: `${report}.html` },
  jsonReporter: { fileName: `${report}.json` },
  clearTextReporter: { allowColor: false, logTests: false, maxTestsToLog: 0 },
  thresholds: { high: 90, low: 80, break: null },
  // Reruns test only the mutants whose code or covering tests changed since the last run.
  incremental: !only,
  incrementalFile: `${report}.incremental.json`,
  cleanTempDir: true,
};
