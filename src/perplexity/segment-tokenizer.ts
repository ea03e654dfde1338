// Tokenizing UIT prompts piece by piece. The prompts of one task repeat the same pieces (each
// candidate's definition line, the two examples, each instance's input line) across hundreds of
// pairs, and tokenizing costs more than looking a finished job up in the cache. So a prompt is
// cut into segments, each segment's ids are memoised, and the ids are concatenated.
//
// That equals tokenizing the whole text only where a cut is a pre-token boundary that the
// pre-tokenizer finds in the pieces too. For byte-level BPE with GPT-2's pre-tokenizer regex
// (ByteLevel, use_regex, no prefix space) and no normalizer, BPE never merges across pre-tokens,
// and before a newline that a visible character follows there is always a boundary: the regex
// ends a whitespace run followed by a non-space with `\s+(?!\S)` on all but its last character,
// then takes that last character (the newline) alone. Cutting just before that newline leaves the
// rest of the run at the end of the first piece, where `\s+(?!\S)` takes it whole as well. (Cutting
// after the newline would not do: at the end of a piece a whole "\n\n" becomes one pre-token.)
// For any other tokenizer the text is not cut. test/perplexity/segment-tokenizer.test.ts checks
// the equality on real Ni-v2 prompts.
import { readFileSync } from 'node:fs';
import type { UitTokenizer } from '../tokenizer/index.js';

type Json = Record<string, unknown>;

/** Whether cutting after "\n" before non-whitespace keeps the tokenization of this tokenizer.json. */
export function segmentable(tokenizer: Json): boolean {
  const pre = tokenizer.pre_tokenizer as Json | null | undefined;
  const model = tokenizer.model as Json | undefined;
  return (
    (tokenizer.normalizer === null || tokenizer.normalizer === undefined) &&
    model?.type === 'BPE' &&
    pre?.type === 'ByteLevel' &&
    pre.use_regex !== false &&
    pre.add_prefix_space === false
  );
}

/**
 * The text cut before each newline that a visible ASCII character follows (ASCII, so that no
 * regex engine can disagree about the character being whitespace).
 */
export function segments(text: string): string[] {
  // [!-~] is 0x21-0x7E; split makes no cut for a match at index 0 (no empty first piece)
  return text.split(/(?=\n[!-~])/);
}

export class SegmentTokenizer {
  private readonly memo = new Map<string, number[]>();

  constructor(
    readonly tokenizer: UitTokenizer,
    /** Cut texts into segments (only where that is exact, see segmentable()). */
    readonly cut: boolean,
  ) {}

  /** For a model folder's tokenizer.json (not cut when the file cannot be read). */
  static forFile(tokenizer: UitTokenizer, tokenizerFile: string): SegmentTokenizer {
    let cut = false;
    try {
      cut = segmentable(JSON.parse(readFileSync(tokenizerFile, 'utf8')) as Json);
    } catch {
      // unreadable: tokenize whole texts
    }
    return new SegmentTokenizer(tokenizer, cut);
  }

  encode(text: string): number[] {
    if (!this.cut) return this.tokenizer.encode(text);
    const ids: number[] = [];
    for (const seg of segments(text)) {
      let s = this.memo.get(seg);
      if (!s) {
        s = this.tokenizer.encode(seg);
        this.memo.set(seg, s);
      }
      for (const id of s) ids.push(id);
    }
    return ids;
  }

  /** Forgets the memo (the scorer does after each call, so memory stays bounded). */
  clear(): void {
    this.memo.clear();
  }
}
