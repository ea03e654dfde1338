// Content sniffing helpers for format detection: the first record of a JSONL file or of a JSON
// array, read from the first 64 KiB of the file without parsing the rest.
import { closeSync, openSync, readSync } from 'node:fs';
import { extname } from 'node:path';
import { InputError } from '../errors.js';
import { inputReadError } from '../io/jsonl.js';
import type { Sniff } from './api.js';

export const SNIFF_BYTES = 64 * 1024;

export function sniffFile(file: string): Sniff {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (err) {
    const e = inputReadError(file, err);
    throw e instanceof InputError ? e : new InputError({ file }, `cannot read: ${(err as Error).message}`);
  }
  try {
    const buf = Buffer.alloc(SNIFF_BYTES);
    const n = readSync(fd, buf, 0, SNIFF_BYTES, 0);
    let head = buf.subarray(0, n).toString('utf8');
    if (head.charCodeAt(0) === 0xfeff) head = head.slice(1);
    // a multi-byte character cut at the end decodes to U+FFFD; harmless for sniffing
    return { file, ext: extname(file).toLowerCase(), head, whole: n < SNIFF_BYTES };
  } finally {
    closeSync(fd);
  }
}

/** The end (exclusive) of the JSON object starting at `start`, or -1 if it is not in `text`. */
function objectEnd(text: string, start: number): number {
  let depth = 0;
  let inStr = false;
  for (let i = start; i < text.length; i++) {
    const c = text[i];
    if (inStr) {
      if (c === '\\') i++;
      else if (c === '"') inStr = false;
      continue;
    }
    if (c === '"') inStr = true;
    else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') {
      depth--;
      if (depth === 0) return i + 1;
    }
  }
  return -1;
}

/** The first record of a JSONL file or JSON array (as far as the head shows it), else null. */
export function firstJsonRecord(s: Sniff): Record<string, unknown> | null {
  const t = s.head.trimStart();
  let candidate: string | null = null;
  if (t.startsWith('[')) {
    const start = t.indexOf('{');
    if (start === -1 || t.slice(1, start).trim() !== '') return null;
    const end = objectEnd(t, start);
    if (end !== -1) candidate = t.slice(start, end);
  } else if (t.startsWith('{')) {
    const line = t.split('\n', 1)[0];
    candidate = line;
  }
  if (candidate === null) return null;
  try {
    const v = JSON.parse(candidate) as unknown;
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

export function firstJsonRecordKeys(s: Sniff): string[] | null {
  const r = firstJsonRecord(s);
  return r ? Object.keys(r) : null;
}
