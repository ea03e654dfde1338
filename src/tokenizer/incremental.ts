// Streaming detokenisation: a token can end in the middle of a UTF-8 character (byte-level BPE) or
// change how the previous token renders (SentencePiece spaces), so text is released only once it is
// stable. Same scheme as text-generation-inference: decode a small window twice and emit the
// difference, holding back text that ends in U+FFFD (an incomplete character). Space clean-up is
// off here: it rewrites text across the window boundary (" ." -> "."), which would lose characters.
import type { UitTokenizer } from './tokenizer.js';

const REPLACEMENT = '\uFFFD';
/** Prompt tokens kept as left context, so the first generated token renders as it would after the prompt. */
const CONTEXT_TOKENS = 4;

export class IncrementalDecoder {
  private readonly ids: number[];
  private prefixOffset = 0;
  private readOffset: number;

  constructor(
    private readonly tokenizer: UitTokenizer,
    promptIds: readonly number[] = [],
  ) {
    this.ids = promptIds.slice(Math.max(0, promptIds.length - CONTEXT_TOKENS));
    this.readOffset = this.ids.length;
  }

  /** Adds one token and returns the text that became stable (often '', sometimes several characters). */
  push(id: number): string {
    this.ids.push(id);
    const prefixText = this.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const newText = this.decode(this.ids.slice(this.prefixOffset));
    if (newText.length > prefixText.length && !newText.endsWith(REPLACEMENT)) {
      this.prefixOffset = this.readOffset;
      this.readOffset = this.ids.length;
      return newText.slice(prefixText.length);
    }
    return '';
  }

  private decode(ids: number[]): string {
    return this.tokenizer.decode(ids, { cleanUpSpaces: false });
  }

  /** Text still held back (an incomplete character renders as U+FFFD). */
  flush(): string {
    const prefixText = this.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const newText = this.decode(this.ids.slice(this.prefixOffset));
    this.prefixOffset = this.readOffset = this.ids.length;
    return newText.length > prefixText.length ? newText.slice(prefixText.length) : '';
  }
}
