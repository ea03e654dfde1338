#!/usr/bin/env node
// `node scripts/mutate/survivors.mjs`: applies, one at a time, the seven mutants that once passed
// every test (issue 26), runs the test files that now guard each, and expects them to fail. Each
// source file is restored right after its run (and on Ctrl-C). Exits 1 if any mutant survives.
// Stryker (`npm run mutate`) covers most of these too; this keeps the issue's own list checkable,
// including the two files Stryker does not mutate (niv2.ts, jinja-py.ts).
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');

export const SURVIVORS = [
  {
    name: 'a prefix of the API key is let in',
    file: 'src/serve/server.ts',
    from: 'if (!timingSafeEqual(digest(m[1].trim()), keyDigest)) {',
    to: 'if (!(opts.apiKey ?? "").startsWith(m[1].trim())) {',
    tests: ['test/serve/server.test.ts'],
  },
  {
    name: 'Fisher-Yates off by one',
    file: 'src/perplexity/shuffle.ts',
    from: 'Math.floor(rng.nextFloat() * (i + 1))',
    to: 'Math.floor(rng.nextFloat() * i)',
    tests: ['test/perplexity/uit.test.ts'],
  },
  {
    name: 'Input_language and Output_language swapped in the released key order',
    file: 'src/formats/niv2.ts',
    from: "  'Input_language',\n  'Output_language',",
    to: "  'Output_language',\n  'Input_language',",
    tests: ['test/formats/niv2.test.ts'],
  },
  {
    name: 'the released layout indented by 2 spaces',
    file: 'src/formats/niv2.ts',
    from: "RELEASED_STYLE: JsonTextStyle = { indent: '    ',",
    to: "RELEASED_STYLE: JsonTextStyle = { indent: '  ',",
    tests: ['test/formats/niv2.test.ts'],
  },
  {
    name: 'top-p drops the token that reaches exactly p',
    file: 'src/runtime/generation/processors.ts',
    from: 'if (before >= limit) break;',
    to: 'if (before > limit) break;',
    tests: ['test/runtime/sampling.test.ts'],
  },
  {
    name: "Jinja join's default separator is a comma",
    file: 'src/formats/jinja-py.ts',
    from: "join(sep ? pyStr(sep) : '')",
    to: "join(sep ? pyStr(sep) : ',')",
    tests: ['test/formats/promptsource.test.ts'],
  },
  {
    name: 'no fsync before the rename',
    file: 'src/io/atomic.ts',
    from: '        fsyncSync(fd);\n',
    to: '',
    tests: ['test/io/atomic.test.ts'],
  },
];

let restore;
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    restore?.();
    process.exit(130);
  });
}

let survived = 0;
for (const m of SURVIVORS) {
  const path = join(ROOT, m.file);
  const original = readFileSync(path, 'utf8');
  const at = original.indexOf(m.from);
  if (at < 0 || original.indexOf(m.from, at + 1) >= 0) {
    console.error(`${m.file}: the text to mutate is not there exactly once (the code moved: update scripts/mutate/survivors.mjs)\n  ${JSON.stringify(m.from)}`);
    process.exit(2);
  }
  restore = () => writeFileSync(path, original);
  writeFileSync(path, original.slice(0, at) + m.to + original.slice(at + m.from.length));
  let r;
  try {
    r = spawnSync(join(ROOT, 'node_modules/.bin/vitest'), ['run', '--reporter=dot', ...m.tests], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' } });
  } finally {
    restore();
    restore = undefined;
  }
  const failed = r.status !== 0;
  if (!failed) survived++;
  const out = `${r.stdout}\n${r.stderr}`;
  const summary = /Tests\s+.*$/m.exec(out)?.[0].trim() ?? `exit ${r.status}`;
  console.log(`${failed ? 'killed  ' : 'SURVIVED'} ${m.name} (${m.file}; ${m.tests.join(' ')}: ${summary})`);
  // the failing tests by name, so that a load error is not taken for a kill
  const fails = [...new Set(out.split('\n').filter((l) => /^\s*FAIL\s/.test(l)).map((l) => l.trim()))];
  for (const f of fails.slice(0, 5)) console.log(`    ${f}`);
}
process.exit(survived ? 1 : 0);
