// `uit compare` through the real binary (bin/uit.js -> dist/): registration, output, exit codes.
import { beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const FIX = 'test/fixtures/compare';

function uit(...args: string[]) {
  const r = spawnSync(process.execPath, ['bin/uit.js', ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

beforeAll(() => {
  const built = 'dist/commands/compare.js';
  if (!existsSync(built) || statSync(built).mtimeMs < statSync('src/commands/compare.ts').mtimeMs) {
    throw new Error(`${built} is missing or older than its source: run \`npm run build\` first (npm test does)`);
  }
});

describe('uit compare (CLI)', () => {
  it('prints the table, writes the HTML report, and exits 0', () => {
    const html = join(mkdtempSync(join(tmpdir(), 'uit-cli-compare-')), 'sub', 'report.html');
    const r = uit('compare', '--offline', `${FIX}/offline`, '--api', `${FIX}/api`, '--html', html);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/task610_conllpp_ner\s+0\.570\s+0\.339\s+no/);
    expect(r.stdout).toContain('Only in offline (1): task037_qasc_generate_related_fact');
    expect(r.stdout).toContain(`HTML report written to ${html}`);
    expect(readFileSync(html, 'utf8')).toMatch(/^<!doctype html>/);
  });

  it('--json prints exactly the documented top-level keys', () => {
    const r = uit('compare', '--offline', `${FIX}/offline.jsonl`, '--api', `${FIX}/api.jsonl`, '--json');
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(Object.keys(doc)).toEqual(['tasks', 'only_offline', 'only_api', 'summary']);
    expect(doc.tasks).toHaveLength(5);
    expect(doc.summary.exact).toBe(2);
  });

  it('exits 3 on bad input, 2 on bad usage, and has --help with examples', () => {
    const bad = uit('compare', '--offline', `${FIX}/offline`, '--api', `${FIX}/nope.jsonl`);
    expect(bad.code).toBe(3);
    expect(bad.stderr).toContain('nope.jsonl: no such file or folder');
    expect(uit('compare', '--offline', `${FIX}/offline`).code).toBe(2);
    const help = uit('compare', '--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Examples:');
    expect(help.stdout).toContain('--scorer <dir>');
  });
});
