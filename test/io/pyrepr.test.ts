// Python's repr() of str and list, against /usr/bin/python3 itself: every code point alone, and
// texts that exercise the quote choice and the escapes. Skipped with the reason when there is no
// python3, unless UIT_REQUIRE_SYSTEM_DEPS=1.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { pyReprList, pyReprStr } from '../../src/io/pyrepr.js';

const PY = '/usr/bin/python3';
const hasPython = spawnSync(PY, ['-c', 'pass'], { stdio: 'ignore' }).status === 0;
const required = process.env.UIT_REQUIRE_SYSTEM_DEPS === '1';

function python(script: string, input = ''): string {
  const r = spawnSync(PY, ['-c', script], { input, encoding: 'utf8', maxBuffer: 1 << 28, env: { ...process.env, PYTHONIOENCODING: 'utf-8:surrogatepass' } });
  if (r.status !== 0) throw new Error(`python3 failed: ${r.stderr}`);
  return r.stdout;
}

const TEXTS = [
  '',
  'plain',
  "it's",
  'say "hi"',
  `it's "both"`,
  "'",
  '"',
  `'"`,
  'back\\slash \\n not a newline',
  'tab\there\nnewline\rreturn',
  'bell\x07 nul\x00 esc\x1b del\x7f',
  'nbsp\u00a0 soft\u00adhyphen zwsp\u200b lsep\u2028 psep\u2029 bom\ufeff',
  'café naïve 日本語 ✓ 😀 \u{1F9D1}\u{200D}\u{1F4BB}',
  'private \ue000 \u{F0000} lone \ud800 and \udc00 end',
  'latin1 \u0085 \u009f \u00ff',
  "You are given a movie's title. Answer \"yes\" or 'no'.",
];

describe.skipIf(!hasPython && !required)(`repr() equals ${PY}'s`, () => {
  it('for texts with quotes, backslashes, control, format and non-ASCII characters, alone and as lists', () => {
    // JSON carries lone surrogates as \ud800 escapes, which Python's json keeps as lone surrogates
    const out = python(
      'import json, sys\nts = json.loads(sys.stdin.read())\nprint(json.dumps([repr(t) for t in ts] + [repr(ts), repr([]), repr(ts[2:4])]))',
      JSON.stringify(TEXTS),
    );
    const want = JSON.parse(out) as string[];
    expect(TEXTS.map(pyReprStr)).toEqual(want.slice(0, TEXTS.length));
    expect(pyReprList(TEXTS)).toBe(want[TEXTS.length]);
    expect(pyReprList([])).toBe('[]');
    expect(pyReprList(TEXTS.slice(2, 4))).toBe(want[TEXTS.length + 2]);
    expect(pyReprList(["it's"])).toBe(`["it's"]`);
  });

  it('for every assigned code point alone: equal except characters unassigned in Python\'s older Unicode database', () => {
    // Planes 0-3 and 14 whole (every assigned character lives there), the rest (unassigned planes
    // 4-13, private use planes 15-16) sampled. One line per code point: the repr, and the category
    // Python's unicodedata gives it.
    const cps: number[] = [];
    const whole = (cp: number) => cp < 0x40000 || (cp >= 0xe0000 && cp < 0xf0000);
    for (let cp = 0; cp < 0x110000; cp++) if (whole(cp) || cp % 997 === 0 || (cp & 0xffff) >= 0xfffd) cps.push(cp);
    const out = python(
      "import sys, unicodedata\nw = sys.stdout.write\nfor i in map(int, sys.stdin.read().split()):\n    c = chr(i)\n    w(repr(c) + '\\t' + unicodedata.category(c) + '\\n')\nw(unicodedata.unidata_version + '\\n')",
      cps.join(' '),
    );
    const lines = out.split('\n');
    const version = lines[cps.length];
    const differ: { cp: number; category: string }[] = [];
    cps.forEach((cp, i) => {
      const tab = lines[i].lastIndexOf('\t');
      if (pyReprStr(String.fromCodePoint(cp)) !== lines[i].slice(0, tab)) differ.push({ cp, category: lines[i].slice(tab + 1) });
    });
    // Node's Unicode (process.versions.unicode) is newer than Python 3.11's 14.0: characters
    // assigned since print as themselves here and as escapes there. Nothing else may differ.
    expect(differ.filter((d) => d.category !== 'Cn'), `Unicode ${version} vs ${process.versions.unicode}`).toEqual([]);
    expect(differ.length).toBeLessThan(20_000);
  }, 60_000);
});
