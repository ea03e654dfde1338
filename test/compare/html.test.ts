// The HTML report, as text and in a real headless Chromium (Debian's /usr/bin/chromium via
// playwright-core). Without Chromium the browser tests skip with a reason, unless
// UIT_REQUIRE_SYSTEM_DEPS=1, where they fail.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { readCompareSide } from '../../src/compare/read.js';
import { compareOutputs, reportToJson, type CompareReport } from '../../src/compare/report.js';
import { binValues, escapeHtml, histogramFor, renderHtml } from '../../src/compare/html.js';
import { diffTokens } from '../../src/compare/diff.js';
import { lcsLength } from '../../src/compare/metrics.js';
import { fmt } from '../../src/compare/table.js';
import { Scorer, definitionScorer } from '../../src/perplexity/index.js';
import { loadModel } from '../../src/runtime/index.js';

const FIX = 'test/fixtures/compare';
const CHROMIUM = '/usr/bin/chromium';
const REQUIRE = process.env.UIT_REQUIRE_SYSTEM_DEPS === '1';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium && !REQUIRE) {
  console.warn(`test/compare/html.test.ts: SKIPPING browser tests: ${CHROMIUM} is missing (apt-get install chromium)`);
}

/** With a scorer: the real models/uit-tiny (the UIT scoring of `uit compare --scorer`), scored once for the file. */
let scoredReport: Promise<CompareReport> | undefined;

async function report(scored: boolean): Promise<CompareReport> {
  const build = (scorer?: Parameters<typeof compareOutputs>[0]['scorer']) =>
    compareOutputs({
      offlinePath: `${FIX}/offline`,
      apiPath: `${FIX}/api`,
      offline: readCompareSide(`${FIX}/offline`).tasks,
      api: readCompareSide(`${FIX}/api`).tasks,
      scorer,
    });
  if (!scored) return build();
  scoredReport ??= (async () => {
    const model = await loadModel('models/uit-tiny', { threads: 1 });
    try {
      return await build(definitionScorer(new Scorer(model, { scorerId: 'html-test' })));
    } finally {
      await model.dispose();
    }
  })();
  return scoredReport;
}

/** Word tokens of a text, as the diff sees them. */
const tokens = (text: string) => diffTokens(text).map((t) => t.text);

describe('HTML report as text', () => {
  it('escapes every piece of user text', () => {
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
  });

  it('is self-contained: no external reference, a CSP that forbids fetching', async () => {
    const html = renderHtml(await report(true));
    expect(html).toContain(`default-src 'none'`);
    expect(html).not.toMatch(/(src|href)\s*=/i);
    expect(html).not.toMatch(/https?:\/\//);
    expect(html).not.toMatch(/@import|url\(/);
    // Instructions containing tags appear only escaped.
    expect(html).not.toContain('<B-PER>');
    expect(html).toContain('&lt;B-PER&gt;');
    expect(html).toContain('proper noun &amp; label it');
  });

  it('bins histogram values, counting the maximum in the last bin', () => {
    const bins = binValues([0, 0.05, 0.5, 1], 0, 1, 10);
    expect(bins.map((b) => b.count)).toEqual([2, 0, 0, 0, 0, 1, 0, 0, 0, 1]);
    expect(binValues([-2, -1, 0, 3], -3, 3, 6).map((b) => b.count)).toEqual([0, 1, 1, 1, 0, 1]);
  });

  it('histograms perplexity differences when scored, ROUGE-L otherwise', async () => {
    const scored = histogramFor(await report(true));
    expect(scored.kind).toBe('perplexity-difference');
    expect(scored.bins.reduce((s, b) => s + b.count, 0)).toBe(5);
    expect(scored.bins[0].lo).toBeCloseTo(-scored.bins[scored.bins.length - 1].hi, 12); // symmetric around 0
    const diffs = (await report(true)).tasks.map((t) => t.offline.perplexity! - t.api.perplexity!);
    const last = scored.bins.length - 1;
    expect(scored.bins.map((b, i) => diffs.filter((d) => d >= b.lo && (d < b.hi || (i === last && d <= b.hi))).length)).toEqual(scored.bins.map((b) => b.count));
    const plain = histogramFor(await report(false));
    expect(plain.kind).toBe('rougeL');
    expect(plain.bins).toHaveLength(10);
    expect(plain.bins[9].count).toBe(2); // the two exact matches have ROUGE-L 1
  });
});

describe.skipIf(!haveChromium && !REQUIRE)('HTML report in headless Chromium', () => {
  let dir: string;
  let context: BrowserContext;
  let page: Page;
  const screenshots = process.env.UIT_SCREENSHOT_DIR ?? join(tmpdir(), 'uit-compare-screenshots');

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'uit-html-'));
    context = await chromium.launchPersistentContext(join(dir, 'profile'), {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
      viewport: { width: 1400, height: 1000 },
    });
    page = context.pages()[0] ?? (await context.newPage());
  });

  afterAll(async () => {
    await context?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Loads the report through a route that serves it and records (and blocks) every other request. */
  async function open(html: string, headers: Record<string, string> = {}): Promise<string[]> {
    const url = 'http://uit-report.invalid/report.html';
    const others: string[] = [];
    await context.unroute('**/*');
    await context.route('**/*', async (route) => {
      if (route.request().url() === url) {
        await route.fulfill({ status: 200, contentType: 'text/html; charset=utf-8', headers, body: html });
      } else {
        others.push(route.request().url());
        await route.abort();
      }
    });
    await page.goto(url, { waitUntil: 'load' });
    return others;
  }

  async function columnValues(col: string): Promise<string[]> {
    return page.$$eval(`#tasks tbody tr td[data-col="${col}"]`, (tds) => tds.map((td) => td.getAttribute('data-value') ?? ''));
  }

  it('renders, numbers match the --json output, and no request leaves the page', async () => {
    const r = await report(true);
    const json = JSON.parse(JSON.stringify(reportToJson(r)));
    const others = await open(renderHtml(r));

    expect(await page.title()).toContain('uit compare');
    const rows = await page.$$eval('#tasks tbody tr', (trs) =>
      trs.map((tr) => {
        const cell = (c: string) => tr.querySelector(`td[data-col="${c}"]`)!;
        return {
          id: tr.getAttribute('data-id'),
          rougeL: cell('rougeL').getAttribute('data-value'),
          rougeLText: cell('rougeL').textContent,
          bleu: cell('bleu').getAttribute('data-value'),
          bleuText: cell('bleu').textContent,
          exact: cell('exact').textContent,
          offlinePerplexity: cell('offlinePerplexity').getAttribute('data-value'),
          apiPerplexity: cell('apiPerplexity').getAttribute('data-value'),
          winner: cell('winner').textContent,
          offline: cell('offlineDefinition').textContent,
          api: cell('apiDefinition').textContent,
          offlineWords: cell('offlineWords').textContent,
          apiChars: cell('apiChars').textContent,
        };
      }),
    );
    expect(rows.map((x) => x.id)).toEqual(json.tasks.map((t: { id: string }) => t.id));
    rows.forEach((row, i) => {
      const t = json.tasks[i];
      expect(Number(row.rougeL)).toBe(t.rougeL);
      expect(row.rougeLText).toBe(fmt(t.rougeL));
      expect(Number(row.bleu)).toBe(t.bleu);
      expect(row.bleuText).toBe(fmt(t.bleu));
      expect(row.exact).toBe(t.exact ? 'yes' : 'no');
      expect(Number(row.offlinePerplexity)).toBe(t.offline.perplexity);
      expect(Number(row.apiPerplexity)).toBe(t.api.perplexity);
      expect(row.winner).toBe(t.winner);
      // The text, tags and ampersands included, arrives in the DOM exactly as in the JSON.
      expect(row.offline).toBe(t.offline.definition);
      expect(row.api).toBe(t.api.definition);
      expect(Number(row.offlineWords)).toBe(t.offline.words);
      expect(Number(row.apiChars)).toBe(t.api.chars);
    });
    expect(rows.find((x) => x.id === 'task610_conllpp_ner')!.api).toContain('<B-PER>, <I-PER>');

    const summary = await page.$$eval('dd[data-summary]', (dds) =>
      Object.fromEntries(dds.map((dd) => [dd.getAttribute('data-summary'), dd.getAttribute('data-value')])),
    );
    expect(Number(summary.matched)).toBe(json.summary.matched);
    expect(Number(summary.exact)).toBe(json.summary.exact);
    expect(Number(summary.rougeLMean)).toBe(json.summary.rougeL.mean);
    expect(Number(summary.corpusBleu)).toBe(json.summary.corpusBleu);
    expect(Number(summary.pplMeanDifference)).toBe(json.summary.perplexity.meanDifference);
    expect(Number(summary.winsOffline)).toBe(json.summary.perplexity.wins.offline);

    expect(await page.$$eval('#only-offline li', (lis) => lis.map((l) => l.textContent))).toEqual(json.only_offline);
    expect(await page.$$eval('#only-api li', (lis) => lis.map((l) => l.textContent))).toEqual(json.only_api);

    const hist = await page.$eval('#histogram', (svg) => ({
      kind: svg.getAttribute('data-kind'),
      counts: Array.from(svg.querySelectorAll('rect.bar')).map((r) => Number((r as typeof svg).getAttribute('data-count'))),
      visible: svg.getBoundingClientRect().width > 0,
    }));
    expect(hist.kind).toBe('perplexity-difference');
    expect(hist.counts.reduce((a, b) => a + b, 0)).toBe(json.summary.perplexity.scored);
    expect(hist.visible).toBe(true);

    expect(others).toEqual([]);
  });

  it('marks a word diff in each row: deletions in the offline instruction, insertions in the API one', async () => {
    const r = await report(true);
    await open(renderHtml(r));
    const rows = await page.$$eval('#tasks tbody tr', (trs) =>
      trs.map((tr) => {
        const cell = (c: string) => tr.querySelector(`td[data-col="${c}"]`)!;
        type El = typeof tr;
        // the cell's text with its marked pieces replaced by a space
        const unmarked = (td: El, tag: string) =>
          Array.from(td.childNodes)
            .map((n) => n as El)
            .map((n) => (n.nodeName.toLowerCase() === tag ? ' ' : (n.textContent ?? '')))
            .join('');
        const texts = (td: El, tag: string) => Array.from(td.querySelectorAll(tag)).map((d) => (d as El).textContent ?? '');
        const off = cell('offlineDefinition');
        const api = cell('apiDefinition');
        return {
          id: tr.getAttribute('data-id')!,
          offline: off.textContent,
          api: api.textContent,
          deleted: texts(off, 'del'),
          inserted: texts(api, 'ins'),
          insInOffline: off.querySelectorAll('ins').length + api.querySelectorAll('del').length,
          offUnmarked: unmarked(off, 'del'),
          apiUnmarked: unmarked(api, 'ins'),
          deletedCount: Number(off.getAttribute('data-deleted')),
          insertedCount: Number(api.getAttribute('data-inserted')),
        };
      }),
    );
    expect(rows).toHaveLength(r.tasks.length);
    for (const row of rows) {
      const t = r.tasks.find((x) => x.id === row.id)!;
      expect(row.offline).toBe(t.offline.definition); // marking adds no text
      expect(row.api).toBe(t.api.definition);
      expect(row.insInOffline).toBe(0);
      // what is left unmarked is the same word sequence on both sides, and a longest common one
      const common = tokens(row.offUnmarked);
      expect(tokens(row.apiUnmarked)).toEqual(common);
      expect(common).toHaveLength(lcsLength(tokens(t.offline.definition), tokens(t.api.definition)));
      expect(row.deleted.flatMap(tokens)).toHaveLength(row.deletedCount);
      expect(row.inserted.flatMap(tokens)).toHaveLength(row.insertedCount);
      expect(row.deletedCount + common.length).toBe(tokens(t.offline.definition).length);
      if (t.exact) expect([row.deleted, row.inserted], row.id).toEqual([[], []]); // spacing is no change
      else expect(row.deleted.length * row.inserted.length, row.id).toBeGreaterThan(0);
    }
    const ner = rows.find((x) => x.id === 'task610_conllpp_ner')!;
    expect(ner.inserted).toContain('noun &');
    expect(ner.deleted).toContain('In this task, you are given a');
  });

  it('reads with scripts off: the diff marks and the legend show without JavaScript', async () => {
    const r = await report(true);
    await open(renderHtml(r), { 'Content-Security-Policy': "script-src 'none'" });
    await page.click('th[data-key="rougeL"]');
    expect(await page.getAttribute('th[data-key="rougeL"]', 'aria-sort')).toBeNull(); // the sorting script did not run
    const style = (sel: string) =>
      page.$eval(sel, (el) => {
        const cs = el.ownerDocument.defaultView!.getComputedStyle(el);
        const box = el.getBoundingClientRect();
        return { line: cs.textDecorationLine, background: cs.backgroundColor, visible: box.width > 0 && box.height > 0 };
      });
    const look = {
      del: await style('td[data-col="offlineDefinition"] del'),
      ins: await style('td[data-col="apiDefinition"] ins'),
      legend: await page.$eval('#diff-legend', (p) => p.textContent),
    };
    expect(look.del.line).toContain('line-through');
    expect(look.ins.line).not.toContain('line-through');
    expect(look.del.visible && look.ins.visible).toBe(true);
    for (const bg of [look.del.background, look.ins.background]) expect(bg).not.toMatch(/^rgba\(0, 0, 0, 0\)$|transparent/);
    expect(look.del.background).not.toBe(look.ins.background);
    expect(look.legend).toMatch(/struck out.*only in the offline one.*highlighted.*only in the API one/);
  });

  it('sorts by a column when its header is clicked, and reverses on a second click', async () => {
    const r = await report(true);
    await open(renderHtml(r));
    const expectedAsc = [...r.tasks].sort((a, b) => a.rougeL - b.rougeL).map((t) => t.rougeL);

    await page.click('th[data-key="rougeL"]');
    const asc = (await columnValues('rougeL')).map(Number);
    expect(asc).toEqual(expectedAsc);
    expect(await page.getAttribute('th[data-key="rougeL"]', 'aria-sort')).toBe('ascending');

    await page.click('th[data-key="rougeL"]');
    expect((await columnValues('rougeL')).map(Number)).toEqual([...expectedAsc].reverse());

    await page.click('th[data-key="offlineWords"]');
    const words = (await columnValues('offlineWords')).map(Number);
    expect(words).toEqual([...words].sort((a, b) => a - b));
    expect(words).not.toEqual(r.tasks.map((t) => t.offline.words)); // the order did change

    await page.click('th[data-key="id"]');
    await page.click('th[data-key="id"]');
    expect(await columnValues('id')).toEqual(r.tasks.map((t) => t.id).reverse());
  });

  it('opens from disk with no network and saves a screenshot', async () => {
    const r = await report(true);
    const file = join(dir, 'report.html');
    writeFileSync(file, renderHtml(r));
    await context.unroute('**/*');
    const requests: string[] = [];
    const onRequest = (req: { url(): string }) => requests.push(req.url());
    page.on('request', onRequest);
    const fileUrl = pathToFileURL(file).href;
    await page.goto(fileUrl, { waitUntil: 'load' });
    page.off('request', onRequest);
    expect(requests).toEqual([fileUrl]);
    expect(await page.$$eval('#tasks tbody tr', (trs) => trs.length)).toBe(5);

    mkdirSync(screenshots, { recursive: true });
    const shot = resolve(screenshots, 'compare-report.png');
    await page.screenshot({ path: shot, fullPage: true });
    const png = readFileSync(shot);
    expect(png.subarray(1, 4).toString('latin1')).toBe('PNG');
    expect(png.length).toBeGreaterThan(10_000);
    console.log(`compare report screenshot: ${shot}`);
  });

  it('without a scorer: a ROUGE-L histogram and no perplexity columns', async () => {
    const r = await report(false);
    await open(renderHtml(r));
    expect(await page.$eval('#histogram', (s) => s.getAttribute('data-kind'))).toBe('rougeL');
    expect(await page.$$('th[data-key="offlinePerplexity"]')).toHaveLength(0);
    expect(await page.$eval('#histogram-caption', (p) => p.textContent)).toContain('ROUGE-L');
  });
});
