// Exported rows as text: JSON Lines (one object per line) or CSV (RFC 4180, JSON-valued
// columns as JSON text, NULL as an empty field).
import type { ExportRow } from './cache.js';

export type ExportFormat = 'jsonl' | 'csv';

export function csvHeader(columns: readonly string[]): string {
  return `${columns.map(csvField).join(',')}\r\n`;
}

export function formatExportRow(row: ExportRow, format: ExportFormat): string {
  if (format === 'jsonl') return `${JSON.stringify(row)}\n`;
  return `${Object.values(row)
    .map((v) => csvField(v === null ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v)))
    .join(',')}\r\n`;
}

function csvField(s: string): string {
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}
