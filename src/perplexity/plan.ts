// Which pairs share a prefilled prefix. Sharing is decided on token ids, never on text, so a
// shared run computes exactly what separate runs would (up to float noise).
//
// Sorting the prefixes' token sequences puts sequences with long common beginnings next to each
// other; a group is then a run of neighbours, and its shared part is the smallest common prefix
// length (LCP) between neighbours in the run. Running a group costs its shared part once plus
// every member's tail, so grouping saves (members - 1) x shared tokens; a dynamic programme picks
// the runs that save the most, minus a fixed cost per prefill. For the UIT prompt this finds one
// group per candidate definition ("Definition: ... Positive Examples ... Input: "), because the
// part common to ALL candidates ("Definition: ") is a few tokens and not worth a second level.

export interface PrefixGroup {
  /** Tokens of the shared prefix, run once: 0 for the pool of pairs that share nothing. */
  shared: number;
  /** Indices into the planned prefix list, in sorted-prefix order. */
  members: number[];
}

export interface PlanOptions {
  /** Group at all (false: every pair runs its whole sequence, the no-reuse baseline). Default true. */
  reuse?: boolean;
  /**
   * What one extra prefill costs, in tokens of work (a forward call, copying the KV cache into
   * the batch rows). A group must save more than this. Default 16.
   */
  prefillCost?: number;
  /** Largest group considered (bounds the planner's work to n x window). Default 1024. */
  window?: number;
}

/** Lexicographic order of two token sequences (a proper prefix sorts first). */
export function compareIds(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

export function commonPrefixLength(a: readonly number[], b: readonly number[]): number {
  let i = 0;
  while (i < a.length && a[i] === b[i]) i++; // past b's end b[i] is undefined, which no id equals
  return i;
}

/**
 * Splits `prefixes` into groups that share a prefilled prefix, plus (first, when not empty) one
 * pool with `shared: 0` whose members run whole. Deterministic: the same list always gives the
 * same plan, whatever is cached, so batches and their float rounding are reproducible.
 */
export function planGroups(prefixes: readonly (readonly number[])[], opts: PlanOptions = {}): PrefixGroup[] {
  const n = prefixes.length;
  if (n === 0) return [];
  if (opts.reuse === false) return [{ shared: 0, members: prefixes.map((_, i) => i) }];
  const cost = opts.prefillCost ?? 16;
  const window = Math.max(2, opts.window ?? 1024);

  // the sort is stable: equal prefixes keep their input order
  const order = prefixes.map((_, i) => i).sort((a, b) => compareIds(prefixes[a], prefixes[b]));
  // lcp[k] = common prefix of sorted neighbours k-1 and k (lcp[0] unused).
  const lcp = new Int32Array(n);
  for (let k = 1; k < n; k++) lcp[k] = commonPrefixLength(prefixes[order[k - 1]], prefixes[order[k]]);

  // best[i]: the largest saving over the first i sorted items; from[i]: where its last run starts
  // (from[i] = i - 1 with shared 0 means item i-1 runs whole).
  const best = new Float64Array(n + 1);
  const from = new Int32Array(n + 1);
  const sharedOf = new Int32Array(n + 1);
  for (let i = 1; i <= n; i++) {
    best[i] = best[i - 1];
    from[i] = i - 1;
    sharedOf[i] = 0;
    let c = Number.MAX_SAFE_INTEGER;
    for (let j = i - 2; j >= 0 && i - j <= window; j--) {
      c = Math.min(c, lcp[j + 1]); // common prefix of sorted items j .. i-1
      if (c === 0) break;
      const gain = best[j] + (i - j - 1) * c - cost;
      if (gain > best[i]) {
        best[i] = gain;
        from[i] = j;
        sharedOf[i] = c;
      }
    }
  }

  const groups: PrefixGroup[] = [];
  const pool: number[] = [];
  for (let i = n; i > 0; i = from[i]) {
    const members = order.slice(from[i], i);
    if (sharedOf[i] === 0) pool.push(...members);
    else groups.push({ shared: sharedOf[i], members });
  }
  groups.reverse();
  pool.reverse();
  return pool.length > 0 ? [{ shared: 0, members: pool }, ...groups] : groups;
}

/**
 * Cuts continuations of a group, given as `lengths` sorted longest first, into contiguous batches
 * of at most `maxRows` rows. A batch runs rows x its longest length positions (shorter rows are
 * padded), plus `callCost` positions' worth of fixed cost per forward call; the dynamic programme
 * minimises the total. Returns each batch as positions into `lengths`. Deterministic.
 */
export function planBatches(lengths: readonly number[], maxRows: number, callCost = 16): number[][] {
  const n = lengths.length;
  const rowsCap = Math.max(1, Math.floor(maxRows));
  if (lengths.slice(1).some((l, i) => l > lengths[i])) throw new RangeError('planBatches: lengths must be sorted longest first');
  const cost = new Float64Array(n + 1);
  const from = new Int32Array(n + 1);
  for (let i = 1; i <= n; i++) {
    cost[i] = Infinity;
    // last batch j..i-1, from one row up; on a tie the larger last batch (fewer calls) wins
    for (let j = i - 1; j >= Math.max(0, i - rowsCap); j--) {
      const c = cost[j] + (i - j) * lengths[j] + callCost; // rows j..i-1, padded to lengths[j]
      if (c <= cost[i]) {
        cost[i] = c;
        from[i] = j;
      }
    }
  }
  const batches: number[][] = [];
  for (let i = n; i > 0; i = from[i]) batches.push(Array.from({ length: i - from[i] }, (_, k) => from[i] + k));
  return batches.reverse();
}
