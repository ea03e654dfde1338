// A word-level diff of two instructions, for the HTML report: which words of the offline
// instruction the API one lacks (deleted) and which it adds (inserted). Tokens are words (runs of
// letters, digits and _) and single punctuation marks, so "task." against "task:" marks only the
// mark. Whitespace is no token: text that differs only in spacing shows no change, as `exact` says.
// The common part is a longest common subsequence of the tokens (Hirschberg's algorithm: exact,
// O(n*m) time, linear memory), after the common beginning and end are set aside.
import { lcsRow } from './metrics.js';

/** A piece of one side's text, in order; the pieces concatenate to the text exactly. */
export interface DiffSpan {
  text: string;
  /** Not in the other side's text (a deletion on the offline side, an insertion on the API side). */
  changed: boolean;
}

export interface WordDiff {
  offline: DiffSpan[];
  api: DiffSpan[];
  /** Tokens only in the offline text. */
  deleted: number;
  /** Tokens only in the API text. */
  inserted: number;
  /** Tokens in the common subsequence. */
  common: number;
}

interface Token {
  text: string;
  start: number;
  end: number;
}

const TOKEN = /[\p{L}\p{N}\p{M}_]+|[^\s\p{L}\p{N}\p{M}_]/gu;

export function diffTokens(text: string): Token[] {
  return [...text.matchAll(TOKEN)].map((m) => ({ text: m[0], start: m.index, end: m.index + m[0].length }));
}

export function wordDiff(offline: string, api: string): WordDiff {
  const a = diffTokens(offline);
  const b = diffTokens(api);
  const keepA = new Uint8Array(a.length);
  const keepB = new Uint8Array(b.length);
  let head = 0;
  while (head < a.length && head < b.length && a[head].text === b[head].text) keepA[head] = keepB[head++] = 1;
  let tail = 0;
  while (tail < a.length - head && tail < b.length - head && a[a.length - 1 - tail].text === b[b.length - 1 - tail].text) {
    keepA[a.length - 1 - tail] = keepB[b.length - 1 - tail] = 1;
    tail++;
  }
  const midA = a.slice(head, a.length - tail).map((t) => t.text);
  const midB = b.slice(head, b.length - tail).map((t) => t.text);
  markLcs(midA, midB, head, head, keepA, keepB);
  const common = keepA.reduce((n, k) => n + k, 0);
  return {
    offline: spans(offline, a, keepA),
    api: spans(api, b, keepB),
    deleted: a.length - common,
    inserted: b.length - common,
    common,
  };
}

/** Marks one longest common subsequence of a and b in keepA/keepB (offsets: where a and b start there). */
function markLcs(a: string[], b: string[], offA: number, offB: number, keepA: Uint8Array, keepB: Uint8Array): void {
  if (a.length === 0 || b.length === 0) return;
  if (a.length === 1) {
    const j = b.indexOf(a[0]);
    if (j >= 0) keepA[offA] = keepB[offB + j] = 1;
    return;
  }
  // Split a in half; split b where the LCS of the two halves, forward and backward, is longest.
  const mid = a.length >> 1;
  const fwd = lcsRow(a.slice(0, mid), b);
  const bwd = lcsRow(a.slice(mid).reverse(), [...b].reverse());
  let k = 0;
  let best = -1;
  for (let j = 0; j <= b.length; j++) {
    const v = fwd[j] + bwd[b.length - j];
    if (v > best) {
      best = v;
      k = j;
    }
  }
  markLcs(a.slice(0, mid), b.slice(0, k), offA, offB, keepA, keepB);
  markLcs(a.slice(mid), b.slice(k), offA + mid, offB + k, keepA, keepB);
}

/**
 * The text cut into unchanged and changed pieces: a run of changed tokens is one piece from its
 * first token's start to its last token's end (the spaces inside it included); everything else,
 * spaces around a run included, is unchanged.
 */
function spans(text: string, tokens: Token[], keep: Uint8Array): DiffSpan[] {
  const out: DiffSpan[] = [];
  const push = (from: number, to: number, changed: boolean) => {
    if (to <= from) return;
    const last = out[out.length - 1];
    if (last && last.changed === changed) last.text += text.slice(from, to);
    else out.push({ text: text.slice(from, to), changed });
  };
  let pos = 0;
  for (let i = 0; i < tokens.length; ) {
    if (keep[i]) {
      i++;
      continue;
    }
    let j = i;
    while (j + 1 < tokens.length && !keep[j + 1]) j++;
    push(pos, tokens[i].start, false);
    push(tokens[i].start, tokens[j].end, true);
    pos = tokens[j].end;
    i = j + 1;
  }
  push(pos, text.length, false);
  return out;
}
