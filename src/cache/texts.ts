// Long prompts are stored once, in paragraphs. A scoring prefix is "Definition: D\n\n" +
// two example paragraphs + the instance paragraph: across 8 candidates x 32 instances each
// paragraph repeats many times, and the few-shot transfer prompt repeats its seed pairs for
// every task. Splitting at blank lines and storing each paragraph once, keyed by its hash, made a
// realistic scoring job's cache 3.3x smaller than storing each prompt whole (docs/cache.md).
// The split is content-defined, so equal text always gives equal pieces, in any process, and two
// caches merge with a plain INSERT OR IGNORE.
import { createHash } from 'node:crypto';
import type Database from 'better-sqlite3';

/** Bytes of each piece's reference: a truncated SHA-256 (128 bits; collisions are not a concern). */
export const TEXT_REF_BYTES = 16;

/** Splits after every run of two or more newlines; the pieces concatenate back to `text`. */
export function splitParagraphs(text: string): string[] {
  const pieces: string[] = [];
  const re = /\n\n+/g;
  let start = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    const end = m.index + m[0].length;
    pieces.push(text.slice(start, end));
    start = end;
  }
  if (start < text.length) pieces.push(text.slice(start));
  return pieces;
}

export function textRef(piece: string): Buffer {
  return createHash('sha256').update(piece, 'utf8').digest().subarray(0, TEXT_REF_BYTES);
}

/** Reads and writes chunked texts in the `texts` table. Use inside the caller's transaction. */
export class TextStore {
  private readonly insert: Database.Statement;
  private readonly select: Database.Statement<[Buffer], { text: string }>;
  /** Pieces seen by this process (by hex ref): skips re-inserting the same paragraph 32 times. */
  private readonly known = new Map<string, string>();
  private static readonly KNOWN_LIMIT = 4096;

  constructor(db: Database.Database) {
    this.insert = db.prepare('INSERT OR IGNORE INTO texts (hash, text) VALUES (?, ?)');
    this.select = db.prepare('SELECT text FROM texts WHERE hash = ?');
  }

  /** Stores the pieces of `text` and returns its reference list (the concatenated piece refs). */
  put(text: string): Buffer {
    const pieces = splitParagraphs(text);
    const refs: Buffer[] = [];
    for (const piece of pieces) {
      const ref = textRef(piece);
      const hex = ref.toString('hex');
      if (!this.known.has(hex)) {
        this.insert.run(ref, piece);
        this.remember(hex, piece);
      }
      refs.push(ref);
    }
    return Buffer.concat(refs);
  }

  get(refs: Uint8Array): string {
    if (refs.length % TEXT_REF_BYTES !== 0) throw new Error(`text reference list of ${refs.length} bytes is not a multiple of ${TEXT_REF_BYTES}`);
    let out = '';
    for (let i = 0; i < refs.length; i += TEXT_REF_BYTES) {
      const ref = Buffer.from(refs.subarray(i, i + TEXT_REF_BYTES));
      const hex = ref.toString('hex');
      let piece = this.known.get(hex);
      if (piece === undefined) {
        const row = this.select.get(ref);
        if (row === undefined) throw new Error(`text piece ${hex} is missing from the texts table`);
        piece = row.text;
        this.remember(hex, piece);
      }
      out += piece;
    }
    return out;
  }

  /** Forget what this process has seen: after a rolled-back transaction, seen pieces may be absent. */
  reset(): void {
    this.known.clear();
  }

  private remember(hex: string, piece: string): void {
    // A small bounded memo: recent paragraphs (the current task's definition and examples) are the
    // ones that repeat.
    if (this.known.size >= TextStore.KNOWN_LIMIT) this.known.clear();
    this.known.set(hex, piece);
  }
}
