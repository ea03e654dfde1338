// The `--html` report: one self-contained file (inline CSS, inline SVG, a few lines of inline JS
// for sorting) that opens from disk with no network. The two instructions of a task stand side by
// side with a word diff marked in them (<del> in the offline one, <ins> in the API one): plain HTML,
// readable with scripts off. A Content-Security-Policy forbids every
// fetch, so a stray external reference fails loudly in the browser instead of phoning home.
// Every piece of user text goes through escapeHtml: instructions contain < > & and quotes.
import { wordDiff, type DiffSpan, type WordDiff } from './diff.js';
import type { CompareReport, TaskComparison } from './report.js';
import { fmt, fmtPpl } from './table.js';

export function escapeHtml(s: string): string {
  return s
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;');
}

export interface HistogramBin {
  lo: number;
  hi: number;
  count: number;
}

export interface Histogram {
  /** What was counted, for the caption. */
  kind: 'perplexity-difference' | 'rougeL';
  label: string;
  bins: HistogramBin[];
  values: number;
}

/** Equal-width bins; the last bin is closed on the right so the maximum is counted. */
export function binValues(values: readonly number[], lo: number, hi: number, n: number): HistogramBin[] {
  const width = (hi - lo) / n;
  const bins: HistogramBin[] = Array.from({ length: n }, (_, i) => ({ lo: lo + i * width, hi: lo + (i + 1) * width, count: 0 }));
  for (const v of values) {
    let i = Math.floor((v - lo) / width);
    if (i >= n) i = n - 1;
    if (i < 0) i = 0;
    bins[i].count++;
  }
  return bins;
}

/**
 * With perplexities: offline minus API perplexity per task scored on both sides, in bins
 * symmetric around 0 (left of 0: the offline instruction predicts the gold outputs better).
 * Without: ROUGE-L in ten bins over [0, 1].
 */
export function histogramFor(report: CompareReport): Histogram {
  const diffs = report.tasks
    .filter((t) => t.winner != null)
    .map((t) => t.offline.perplexity! - t.api.perplexity!);
  if (report.scored && diffs.length > 0) {
    const m = Math.max(...diffs.map(Math.abs)) || 1;
    const half = Math.min(10, Math.max(3, Math.ceil(Math.sqrt(diffs.length) / 2)));
    return {
      kind: 'perplexity-difference',
      label: 'perplexity difference per task (offline − API; negative: offline is better)',
      bins: binValues(diffs, -m, m, 2 * half),
      values: diffs.length,
    };
  }
  const r = report.tasks.map((t) => t.rougeL);
  return {
    kind: 'rougeL',
    label: 'ROUGE-L per task between the offline and the API instruction (no scorer: no perplexities)',
    bins: binValues(r, 0, 1, 10),
    values: r.length,
  };
}

function svgHistogram(h: Histogram): string {
  const W = 640;
  const H = 240;
  const m = { l: 40, r: 12, t: 12, b: 36 };
  const iw = W - m.l - m.r;
  const ih = H - m.t - m.b;
  const maxCount = Math.max(1, ...h.bins.map((b) => b.count));
  const bw = iw / h.bins.length;
  const lo = h.bins[0]?.lo ?? 0;
  const hi = h.bins[h.bins.length - 1]?.hi ?? 1;
  const x = (v: number) => m.l + ((v - lo) / (hi - lo || 1)) * iw;
  const num = h.kind === 'rougeL' ? (v: number) => fmt(v, 1) : (v: number) => fmtPpl(v);
  const parts: string[] = [];
  h.bins.forEach((b, i) => {
    const bh = (b.count / maxCount) * ih;
    parts.push(
      `<rect class="bar" data-lo="${b.lo}" data-hi="${b.hi}" data-count="${b.count}" x="${(m.l + i * bw + 1).toFixed(2)}" y="${(m.t + ih - bh).toFixed(2)}" width="${Math.max(0, bw - 2).toFixed(2)}" height="${bh.toFixed(2)}"><title>${escapeHtml(`${num(b.lo)} to ${num(b.hi)}: ${b.count}`)}</title></rect>`,
    );
  });
  const axis = [
    `<line class="axis" x1="${m.l}" y1="${m.t + ih}" x2="${m.l + iw}" y2="${m.t + ih}"/>`,
    `<line class="axis" x1="${m.l}" y1="${m.t}" x2="${m.l}" y2="${m.t + ih}"/>`,
    `<text x="${m.l - 6}" y="${m.t + 10}" text-anchor="end">${maxCount}</text>`,
    `<text x="${m.l - 6}" y="${m.t + ih}" text-anchor="end">0</text>`,
    `<text x="${m.l}" y="${H - 14}" text-anchor="start">${escapeHtml(num(lo))}</text>`,
    `<text x="${m.l + iw}" y="${H - 14}" text-anchor="end">${escapeHtml(num(hi))}</text>`,
  ];
  if (h.kind === 'perplexity-difference') {
    axis.push(
      `<line class="zero" x1="${x(0)}" y1="${m.t}" x2="${x(0)}" y2="${m.t + ih}"/>`,
      `<text x="${x(0)}" y="${H - 14}" text-anchor="middle">0</text>`,
    );
  } else {
    axis.push(`<text x="${x(0.5)}" y="${H - 14}" text-anchor="middle">0.5</text>`);
  }
  return `<svg id="histogram" data-kind="${h.kind}" data-values="${h.values}" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${escapeHtml(h.label)}">${parts.join('')}${axis.join('')}</svg>`;
}

interface Column {
  key: string;
  title: string;
  numeric: boolean;
  value: (t: TaskComparison) => string | number | null | undefined;
  text: (t: TaskComparison) => string;
  /** The cell's inner HTML when it is more than escaped text (default: escapeHtml(text)). */
  html?: (t: TaskComparison) => string;
  /** More attributes of the cell. */
  attrs?: (t: TaskComparison) => Record<string, string | number>;
  cls?: string;
}

/** One side of the word diff as HTML: the changed pieces inside `tag`, everything escaped. */
function diffHtml(spans: DiffSpan[], tag: 'del' | 'ins'): string {
  return spans.map((s) => (s.changed ? `<${tag}>${escapeHtml(s.text)}</${tag}>` : escapeHtml(s.text))).join('');
}

/** One side's instruction, with its side of the word diff marked: deletions offline, insertions on the API side. */
function instructionColumn(side: 'offline' | 'api', title: string, tag: 'del' | 'ins', diff: (t: TaskComparison) => WordDiff): Column {
  const count = tag === 'del' ? 'deleted' : 'inserted';
  return {
    key: `${side}Definition`,
    title,
    numeric: false,
    value: (t) => t[side].definition,
    text: (t) => t[side].definition,
    html: (t) => diffHtml(diff(t)[side], tag),
    attrs: (t) => ({ [`data-${count}`]: diff(t)[count] }),
    cls: 'text',
  };
}

function columns(scored: boolean): Column[] {
  const diffs = new Map<TaskComparison, WordDiff>();
  const diff = (t: TaskComparison) => {
    let d = diffs.get(t);
    if (!d) diffs.set(t, (d = wordDiff(t.offline.definition, t.api.definition)));
    return d;
  };
  const cols: Column[] = [
    { key: 'id', title: 'task', numeric: false, value: (t) => t.id, text: (t) => t.id, cls: 'id' },
    { key: 'rougeL', title: 'ROUGE-L', numeric: true, value: (t) => t.rougeL, text: (t) => fmt(t.rougeL) },
    { key: 'bleu', title: 'BLEU', numeric: true, value: (t) => t.bleu, text: (t) => fmt(t.bleu) },
    { key: 'exact', title: 'exact', numeric: true, value: (t) => (t.exact ? 1 : 0), text: (t) => (t.exact ? 'yes' : 'no') },
    { key: 'offlineWords', title: 'words off', numeric: true, value: (t) => t.offline.words, text: (t) => String(t.offline.words) },
    { key: 'apiWords', title: 'words api', numeric: true, value: (t) => t.api.words, text: (t) => String(t.api.words) },
    { key: 'offlineChars', title: 'chars off', numeric: true, value: (t) => t.offline.chars, text: (t) => String(t.offline.chars) },
    { key: 'apiChars', title: 'chars api', numeric: true, value: (t) => t.api.chars, text: (t) => String(t.api.chars) },
  ];
  if (scored) {
    cols.push(
      { key: 'offlinePerplexity', title: 'ppl off', numeric: true, value: (t) => t.offline.perplexity, text: (t) => fmtPpl(t.offline.perplexity) },
      { key: 'apiPerplexity', title: 'ppl api', numeric: true, value: (t) => t.api.perplexity, text: (t) => fmtPpl(t.api.perplexity) },
      { key: 'winner', title: 'winner', numeric: false, value: (t) => t.winner ?? '', text: (t) => t.winner ?? '-' },
    );
  }
  cols.push(
    instructionColumn('offline', 'offline instruction', 'del', diff),
    instructionColumn('api', 'API instruction', 'ins', diff),
  );
  return cols;
}

const CSS = `
:root { color-scheme: light; --fg: #1d1d1f; --muted: #666; --line: #d8d8dc; --accent: #3461c1; --bg2: #f5f6f8; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); margin: 24px; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 24px 0 8px; }
.paths { color: var(--muted); font-family: ui-monospace, monospace; font-size: 12px; }
dl.summary { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 0; }
dl.summary dt { color: var(--muted); } dl.summary dd { margin: 0; font-variant-numeric: tabular-nums; }
svg text { font-size: 11px; fill: var(--muted); }
svg .bar { fill: var(--accent); } svg .axis { stroke: #999; } svg .zero { stroke: #c33; stroke-dasharray: 4 3; }
table { border-collapse: collapse; width: 100%; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 6px; vertical-align: top; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.id { font-family: ui-monospace, monospace; font-size: 12px; word-break: break-all; min-width: 12em; }
td.text { white-space: pre-wrap; min-width: 22em; font-size: 13px; }
th { position: sticky; top: 0; background: var(--bg2); cursor: pointer; user-select: none; white-space: nowrap; }
th[aria-sort="ascending"]::after { content: " \\25B2"; } th[aria-sort="descending"]::after { content: " \\25BC"; }
tr.exact td { background: #f3faf3; }
del { background: #fbdada; color: #8a1f1f; text-decoration: line-through; text-decoration-color: #c33; }
ins { background: #d4f0d6; color: #14591d; text-decoration: none; }
p.legend { color: var(--muted); margin: 4px 0 8px; }
ul.only { font-family: ui-monospace, monospace; font-size: 12px; }
`;

// Sort on click: numbers by value (missing last), text by locale; a second click reverses.
const JS = `
(function () {
  var table = document.getElementById('tasks');
  if (!table) return;
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, col) {
    th.addEventListener('click', function () {
      var dir = th.getAttribute('aria-sort') === 'ascending' ? 'descending' : 'ascending';
      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute('aria-sort'); });
      th.setAttribute('aria-sort', dir);
      var numeric = th.getAttribute('data-numeric') === '1';
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var sign = dir === 'ascending' ? 1 : -1;
      rows.sort(function (a, b) {
        var x = a.cells[col].getAttribute('data-value'), y = b.cells[col].getAttribute('data-value');
        if (numeric) {
          var nx = x === '' ? NaN : Number(x), ny = y === '' ? NaN : Number(y);
          if (isNaN(nx) && isNaN(ny)) return 0;
          if (isNaN(nx)) return 1;
          if (isNaN(ny)) return -1;
          return sign * (nx - ny);
        }
        return sign * x.localeCompare(y);
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
})();
`;

export function renderHtml(report: CompareReport, opts: { title?: string } = {}): string {
  const cols = columns(report.scored);
  const s = report.summary;
  const summaryItems: [string, string, string | number | null][] = [
    ['matched', 'matched tasks', s.matched],
    ['onlyOffline', 'only in offline', s.onlyOffline],
    ['onlyApi', 'only in API', s.onlyApi],
    ['exact', 'exact matches', s.exact],
    ['rougeLMean', 'mean ROUGE-L', s.rougeL?.mean ?? null],
    ['bleuMean', 'mean sentence BLEU', s.bleu?.mean ?? null],
    ['corpusBleu', 'corpus BLEU', s.corpusBleu],
  ];
  if (s.perplexity) {
    summaryItems.push(
      ['pplScored', 'scored on both sides', s.perplexity.scored],
      ['pplOfflineMean', 'mean perplexity, offline', s.perplexity.offlineMean],
      ['pplApiMean', 'mean perplexity, API', s.perplexity.apiMean],
      ['pplMeanDifference', 'mean difference (offline − API)', s.perplexity.meanDifference],
      ['winsOffline', 'offline wins', s.perplexity.wins.offline],
      ['winsApi', 'API wins', s.perplexity.wins.api],
      ['winsTie', 'ties', s.perplexity.wins.tie],
      ['goldDiffers', "gold data differs (scored on the offline side's)", s.perplexity.goldDiffers.length],
    );
  }
  const showNum = (key: string, v: string | number | null): string => {
    if (v === null) return '-';
    if (typeof v === 'string') return v;
    if (Number.isInteger(v)) return String(v);
    return key.startsWith('ppl') ? fmtPpl(v) : fmt(v);
  };
  const summaryHtml = summaryItems
    .map(([key, label, v]) => `<dt>${escapeHtml(label)}</dt><dd data-summary="${key}" data-value="${v ?? ''}">${escapeHtml(showNum(key, v))}</dd>`)
    .join('');

  const hist = histogramFor(report);
  const head = cols
    .map((c) => `<th data-key="${c.key}" data-numeric="${c.numeric ? 1 : 0}" title="sort by ${escapeHtml(c.title)}">${escapeHtml(c.title)}</th>`)
    .join('');
  const rows = report.tasks
    .map((t) => {
      const cells = cols
        .map((c) => {
          const v = c.value(t);
          const cls = c.cls ?? (c.numeric ? 'num' : '');
          const attrs = Object.entries(c.attrs?.(t) ?? {})
            .map(([k, x]) => ` ${k}="${escapeHtml(String(x))}"`)
            .join('');
          const inner = c.html ? c.html(t) : escapeHtml(c.text(t));
          return `<td data-col="${c.key}" data-value="${escapeHtml(v == null ? '' : String(v))}"${attrs}${cls ? ` class="${cls}"` : ''}>${inner}</td>`;
        })
        .join('');
      return `<tr data-id="${escapeHtml(t.id)}"${t.exact ? ' class="exact"' : ''}>${cells}</tr>`;
    })
    .join('\n');
  const only = (id: string, title: string, ids: string[]) =>
    `<h2>${escapeHtml(title)} (${ids.length})</h2>` +
    (ids.length === 0 ? `<p id="${id}" class="none">none</p>` : `<ul id="${id}" class="only">${ids.map((x) => `<li>${escapeHtml(x)}</li>`).join('')}</ul>`);

  const title = opts.title ?? 'uit compare: offline vs API instructions';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${CSS}</style>
</head>
<body>
<h1>${escapeHtml(title)}</h1>
<div class="paths">offline: ${escapeHtml(report.offlinePath)}<br>API: ${escapeHtml(report.apiPath)}</div>
<h2>Summary</h2>
<dl class="summary">${summaryHtml}</dl>
<h2>Histogram</h2>
<p class="caption" id="histogram-caption">${escapeHtml(hist.label)}; ${hist.values} task(s).</p>
${svgHistogram(hist)}
<h2>Tasks on both sides (${report.tasks.length}) — click a header to sort</h2>
<p class="legend" id="diff-legend">Word diff of the two instructions: <del>struck out</del> words are only in the offline one, <ins>highlighted</ins> words only in the API one (differences in spacing are not marked).</p>
<table id="tasks">
<thead><tr>${head}</tr></thead>
<tbody>
${rows}
</tbody>
</table>
${only('only-offline', 'Only in offline', report.onlyOffline)}
${only('only-api', 'Only in API', report.onlyApi)}
<script>${JS}</script>
</body>
</html>
`;
}
