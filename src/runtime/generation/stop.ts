// Stop strings are matched on decoded text, not on token ids: a stop string can span tokens, and
// one token can contain the end of the text and the start of the stop string.

export class StopMatcher {
  readonly stops: readonly string[];
  private readonly maxLength: number;

  constructor(stops: readonly string[] = []) {
    this.stops = stops.filter((s) => s.length > 0);
    this.maxLength = this.stops.reduce((m, s) => Math.max(m, s.length), 0);
  }

  get empty(): boolean {
    return this.stops.length === 0;
  }

  /**
   * The index of the earliest stop string in `text`, or -1. `newFrom` is where text not yet searched
   * begins: only matches that end at or after it are looked for, so streaming checks stay O(new text).
   */
  find(text: string, newFrom = 0): number {
    const from = Math.max(0, newFrom - this.maxLength + 1);
    let best = -1;
    for (const s of this.stops) {
      const i = text.indexOf(s, from);
      if (i !== -1 && (best === -1 || i < best)) best = i;
    }
    return best;
  }

  /** `text` cut before its earliest stop string (unchanged when there is none). */
  cut(text: string): { text: string; stopped: boolean } {
    const i = this.find(text);
    return i === -1 ? { text, stopped: false } : { text: text.slice(0, i), stopped: true };
  }
}
