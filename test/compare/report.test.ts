import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readCompareSide } from '../../src/compare/read.js';
import { compareOutputs, reportToJson, winnerOf, distribution, type CompareReport } from '../../src/compare/report.js';
import { rougeL, sentenceBleu } from '../../src/compare/metrics.js';
import { renderTable } from '../../src/compare/table.js';
import { runCompare } from '../../src/commands/compare.js';
import { InputError, ExitCode } from '../../src/errors.js';
import { BOTH, FIX } from './fixture.js';


async function fixtureReport(kind: 'folder' | 'jsonl'): Promise<CompareReport> {
  const o = kind === 'folder' ? `${FIX}/offline` : `${FIX}/offline.jsonl`;
  const a = kind === 'folder' ? `${FIX}/api` : `${FIX}/api.jsonl`;
  return compareOutputs({
    offlinePath: o,
    apiPath: a,
    offline: readCompareSide(o).tasks,
    api: readCompareSide(a).tasks,
  });
}

describe('compare report on the fixture pair', () => {
  it('matches tasks by id and lists one-sided tasks', async () => {
    const r = await fixtureReport('folder');
    expect(r.tasks.map((t) => t.id)).toEqual(BOTH);
    expect(r.onlyOffline).toEqual(['task037_qasc_generate_related_fact']);
    expect(r.onlyApi).toEqual(['task009_mctaco_question_generation_event_ordering']);
  });

  it('finds the known differences', async () => {
    const r = await fixtureReport('folder');
    const by = new Map(r.tasks.map((t) => [t.id, t]));
    // identical
    expect(by.get(BOTH[0])).toMatchObject({ exact: true, rougeL: 1, bleu: 1 });
    // whitespace only: exact, and both tokenizers see the same tokens
    const ws = by.get(BOTH[2])!;
    expect(ws.offline.definition).not.toBe(ws.api.definition);
    expect(ws).toMatchObject({ exact: true, rougeL: 1, bleu: 1 });
    // reworded: not exact, strictly between 0 and 1, equal to the metric functions
    for (const id of [BOTH[1], BOTH[3], BOTH[4]]) {
      const t = by.get(id)!;
      expect(t.exact).toBe(false);
      expect(t.rougeL).toBeGreaterThan(0);
      expect(t.rougeL).toBeLessThan(1);
      expect(t.bleu).toBeGreaterThan(0);
      expect(t.bleu).toBeLessThan(1);
      expect(t.rougeL).toBe(rougeL(t.api.definition, t.offline.definition).fmeasure);
      expect(t.bleu).toBe(sentenceBleu(t.offline.definition, t.api.definition));
      expect(t.api.words).toBeLessThan(t.offline.words);
    }
    expect(by.get(BOTH[3])!.api.definition).toContain('proper noun & label it: <B-PER>');
    expect(r.summary).toMatchObject({ matched: 5, onlyOffline: 1, onlyApi: 1, exact: 2, exactRate: 0.4 });
    expect(r.summary.rougeL!.mean).toBeCloseTo(r.tasks.reduce((s, t) => s + t.rougeL, 0) / 5, 12);
    expect(r.summary.perplexity).toBeUndefined();
  });

  it('gives the same report from folders and from JSONL', async () => {
    const f = reportToJson(await fixtureReport('folder'));
    const j = reportToJson(await fixtureReport('jsonl'));
    expect(j).toEqual(f);
  });

  it('prints the --json shape and a table', async () => {
    const chunks: string[] = [];
    const out = { write: (s: string) => chunks.push(s) } as unknown as NodeJS.WritableStream;
    await runCompare({ offline: `${FIX}/offline`, api: `${FIX}/api.jsonl`, instances: 32, seed: 0, json: true }, out);
    const doc = JSON.parse(chunks.join(''));
    expect(Object.keys(doc)).toEqual(['tasks', 'only_offline', 'only_api', 'summary']);
    expect(Object.keys(doc.tasks[0]).slice(0, 4)).toEqual(['id', 'rougeL', 'bleu', 'exact']);
    expect(doc.only_offline).toEqual(['task037_qasc_generate_related_fact']);
    const table = renderTable(await fixtureReport('folder'));
    expect(table).toContain('task610_conllpp_ner');
    expect(table).toMatch(/exact matches\s+2 \(40\.0%\)/);
    expect(table).not.toMatch(/ppl|wins/); // no scorer, no perplexity columns (test/compare/scorer.test.ts has them)
  });
});

describe('helpers', () => {
  it('winner and distribution', () => {
    expect(winnerOf(2, 3)).toBe('offline');
    expect(winnerOf(3, 2)).toBe('api');
    expect(winnerOf(2, 2)).toBe('tie');
    expect(winnerOf(null, 2)).toBeNull();
    expect(distribution([3, 1, 2, 10])).toEqual({ mean: 4, median: 2.5, min: 1, max: 10 });
    expect(distribution([])).toBeNull();
  });
});

describe('input errors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'uit-compare-'));
  const write = (name: string, text: string) => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };

  it('names file and line for JSONL problems', () => {
    const noObj = write('noobj.jsonl', '{"id":"a","Definition":["x"]}\n["y"]\n');
    expect(() => readCompareSide(noObj)).toThrow(InputError);
    expect(() => readCompareSide(noObj)).toThrow(`${noObj}:2: expected a JSON object per line`);
    const bad = write('bad.jsonl', '{"id":"a","Definition":["x"]}\n\n{"id":"b",\n');
    expect(() => readCompareSide(bad)).toThrow(`${bad}:3: invalid JSON`);
    const dup = write('dup.jsonl', '{"id":"a","Definition":["x"]}\n{"task":"a","definition":"y"}\n');
    expect(() => readCompareSide(dup)).toThrow(`${dup}:2: id: duplicate task id "a"`);
    const noDef = write('nodef.jsonl', '{"id":"a","Definition":[]}\n');
    expect(() => readCompareSide(noDef)).toThrow(`${noDef}:1: Definition:`);
  });

  it('rejects a missing path and an empty folder with exit code BAD_INPUT', () => {
    try {
      readCompareSide(join(dir, 'nope'));
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(InputError);
      expect((e as InputError).exitCode).toBe(ExitCode.BAD_INPUT);
    }
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    expect(() => readCompareSide(empty)).toThrow('no .json task files');
  });

  it('skips sidecars, reads nested folders as ids with slashes, names id-less JSONL lines by file and line', () => {
    const d = join(dir, 'withside');
    mkdirSync(join(d, 'p3', 'ag_news'), { recursive: true });
    writeFileSync(join(d, 't1.json'), JSON.stringify({ Definition: ['x'] }));
    writeFileSync(join(d, 't1.provenance.json'), JSON.stringify({ source: {} }));
    writeFileSync(join(d, 'provenance.jsonl'), '{"source":{}}\n');
    writeFileSync(join(d, 'uit-summary.json'), '{}');
    writeFileSync(join(d, 'p3', 'ag_news', 'classify.json'), JSON.stringify({ Definition: ['y'] }));
    writeFileSync(join(d, 'more.jsonl'), '{"Definition":["z"]}\n\n{"id":"named","Definition":["w"]}\n');
    const tasks = readCompareSide(d).tasks;
    expect([...tasks.keys()].sort()).toEqual(['more/1', 'named', 'p3/ag_news/classify', 't1']);
    expect(tasks.get('p3/ag_news/classify')!.definition).toBe('y');
    // A single file: its name is the id.
    expect([...readCompareSide(join(d, 'p3', 'ag_news', 'classify.json')).tasks.keys()]).toEqual(['classify']);
  });
});
