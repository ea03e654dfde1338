// `uit --help` and every command's --help: one style for the command list (short summaries,
// lowercase, no final period; the longer description in the command's own help), an example in
// every command's help, and --json wherever a command prints data or a summary.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const REPO = join(__dirname, '../..');

function uit(args: string[]): { code: number | null; stdout: string } {
  const r = spawnSync(process.execPath, [join(REPO, 'bin/uit.js'), ...args], { encoding: 'utf8', env: { ...process.env, COLUMNS: '200' } });
  return { code: r.status, stdout: r.stdout };
}

/** The `Commands:` section of a help text: name -> summary. */
function commandList(help: string): Map<string, string> {
  const section = help.slice(help.indexOf('\nCommands:\n') + 11);
  const rows = new Map<string, string>();
  for (const line of section.split('\n')) {
    const m = /^ {2}(\S+)(?: \S+)*? {2,}(.+)$/.exec(line);
    if (m) rows.set(m[1], m[2]);
  }
  return rows;
}

const top = uit(['--help']);
const commands = [...commandList(top.stdout).keys()].filter((c) => c !== 'help');
const cacheSubcommands = [...commandList(uit(['cache', '--help']).stdout).keys()].filter((c) => c !== 'help');

describe('uit --help', () => {
  it('lists every command with a short summary in one style', () => {
    expect(top.code).toBe(0);
    expect(commands).toEqual(['convert', 'transfer', 'denoise', 'distill-data', 'demo', 'compare', 'cache', 'generate', 'doctor', 'serve', 'score', 'score-instructions', 'bundle']);
    expect(cacheSubcommands).toEqual(['stats', 'export', 'merge', 'salvage', 'vacuum']);
    const summaries = [...commandList(top.stdout).entries(), ...commandList(uit(['cache', '--help']).stdout).entries()].filter(([c]) => c !== 'help');
    for (const [cmd, summary] of summaries) {
      expect(summary.length, `${cmd}: ${summary}`).toBeLessThan(70);
      expect(summary, cmd).toMatch(/^[a-z]/);
      expect(summary, cmd).not.toMatch(/\.$/);
    }
  });

  it("each command's own help has its longer description, an example, and --json where it prints data", () => {
    const runs = [...commands.map((c) => [c]), ...cacheSubcommands.map((c) => ['cache', c])];
    for (const args of runs) {
      const name = args.join(' ');
      const { code, stdout } = uit([...args, '--help']);
      expect(code, name).toBe(0);
      expect(stdout, name).toMatch(/\nExamples?\b[^\n]*:\n/);
      expect(stdout, name).toContain(`  $ uit ${name}`);
      // the description is a sentence (capital letter, final period), not the list's summary
      const description = stdout.split('\n\n')[1];
      expect(description, name).toMatch(/^[A-Z][\s\S]*\.$/);
      if (name !== 'cache') expect(stdout, name).toMatch(/^ {2}--json\b/m);
    }
  });
});

describe('newcomer friction (issue 21)', () => {
  it("--cache's default names $XDG_CACHE_HOME whether it is set or not", () => {
    for (const args of [['convert'], ['transfer'], ['denoise'], ['score'], ['cache', 'stats']]) {
      const r = spawnSync(process.execPath, [join(REPO, 'bin/uit.js'), ...args, '--help'], {
        encoding: 'utf8',
        env: { ...process.env, COLUMNS: '400', XDG_CACHE_HOME: '', UIT_CACHE: '' },
      });
      expect(r.stdout.replace(/\s+/g, ' '), args.join(' ')).toContain('$UIT_CACHE, else $XDG_CACHE_HOME/uit/cache.sqlite, else ~/.cache/uit/cache.sqlite');
    }
  });

  it("the README's tour runs `npx uit` (after npm ci, `uit` is not on PATH), and its FLAN row shows the templates the reader takes", () => {
    const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
    const tour = readme.slice(readme.indexOf('## A tour'), readme.indexOf('## Formats'));
    expect(tour.match(/^\$ uit /gm)).toBeNull();
    expect(tour.match(/^\$ npx uit /gm)?.length).toBeGreaterThan(8);
    expect(readme).not.toContain('[[input, output], ...]');
    expect(readme).toContain('`{dataset: [{"input": ..., "output": ...}, ...]}`');
  });
});
