// The terminal rendering of a comparison: one row per matched task, then the one-sided tasks
// and a summary. Plain text with padded columns, so it pipes and diffs cleanly.
import type { CompareReport, Distribution } from './report.js';

export function fmt(x: number | null | undefined, digits = 3): string {
  if (x == null || !Number.isFinite(x)) return '-';
  return x.toFixed(digits);
}

/** Perplexities span orders of magnitude: 4 significant digits, no exponent below 1e6. */
export function fmtPpl(x: number | null | undefined): string {
  if (x == null || !Number.isFinite(x)) return '-';
  if (Math.abs(x) >= 1e6) return x.toExponential(3);
  const digits = Math.max(0, 3 - Math.floor(Math.log10(Math.max(Math.abs(x), 1e-12))));
  return x.toFixed(Math.min(digits, 4));
}

function pad(rows: string[][], rightAligned: Set<number>): string[] {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) =>
    r
      .map((cell, c) => (rightAligned.has(c) ? cell.padStart(widths[c]) : cell.padEnd(widths[c])))
      .join('  ')
      .trimEnd(),
  );
}

function dist(d: Distribution | null): string {
  if (!d) return '-';
  return `mean ${fmt(d.mean)}  median ${fmt(d.median)}  min ${fmt(d.min)}  max ${fmt(d.max)}`;
}

export function renderTable(report: CompareReport): string {
  const out: string[] = [];
  const header = ['task', 'ROUGE-L', 'BLEU', 'exact', 'words off/api', 'chars off/api'];
  if (report.scored) header.push('ppl offline', 'ppl api', 'winner');
  const rows: string[][] = [header];
  for (const t of report.tasks) {
    const row = [
      t.id,
      fmt(t.rougeL),
      fmt(t.bleu),
      t.exact ? 'yes' : 'no',
      `${t.offline.words}/${t.api.words}`,
      `${t.offline.chars}/${t.api.chars}`,
    ];
    if (report.scored) row.push(fmtPpl(t.offline.perplexity), fmtPpl(t.api.perplexity), t.winner ?? '-');
    rows.push(row);
  }
  if (report.tasks.length > 0) out.push(...pad(rows, new Set([1, 2, 4, 5, 6, 7])));
  else out.push('No task is present on both sides.');

  if (report.onlyOffline.length > 0) out.push('', `Only in offline (${report.onlyOffline.length}): ${report.onlyOffline.join(', ')}`);
  if (report.onlyApi.length > 0) out.push('', `Only in api (${report.onlyApi.length}): ${report.onlyApi.join(', ')}`);

  const s = report.summary;
  out.push('', 'Summary');
  const lines: [string, string][] = [
    ['matched tasks', String(s.matched)],
    ['only offline / only api', `${s.onlyOffline} / ${s.onlyApi}`],
    ['exact matches', `${s.exact} (${fmt(s.exactRate * 100, 1)}%)`],
    ['ROUGE-L', dist(s.rougeL)],
    ['BLEU (sentence)', dist(s.bleu)],
    ['BLEU (corpus)', fmt(s.corpusBleu)],
    ['mean words off/api', s.words ? `${fmt(s.words.offlineMean, 1)} / ${fmt(s.words.apiMean, 1)}` : '-'],
    ['mean chars off/api', s.chars ? `${fmt(s.chars.offlineMean, 1)} / ${fmt(s.chars.apiMean, 1)}` : '-'],
  ];
  if (s.perplexity) {
    const p = s.perplexity;
    lines.push(
      ['scored on both sides', String(p.scored)],
      ['mean ppl off/api', `${fmtPpl(p.offlineMean)} / ${fmtPpl(p.apiMean)}`],
      ['mean ppl difference (off-api)', fmtPpl(p.meanDifference)],
      ['wins offline/api/tie', `${p.wins.offline} / ${p.wins.api} / ${p.wins.tie}`],
    );
    if (p.goldDiffers.length > 0) {
      const first = p.goldDiffers.slice(0, 3).join(', ') + (p.goldDiffers.length > 3 ? ', ...' : '');
      lines.push(['gold data differs', `${p.goldDiffers.length} task(s), scored on the offline side's examples and instances: ${first}`]);
    }
  }
  const w = Math.max(...lines.map(([k]) => k.length));
  for (const [k, v] of lines) out.push(`  ${k.padEnd(w)}  ${v}`);
  return out.join('\n') + '\n';
}
