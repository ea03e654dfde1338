// A Backend that counts what reaches the model, so "a rerun makes no model calls" is a number a
// test or a summary can read, not a belief.
import type { Backend, ForwardInput, ForwardOutput, ForwardWant, KvStore } from '../runtime/index.js';

export interface ModelCallCounts {
  /** forward() calls (prefills and scoring batches). */
  calls: number;
  /** Positions run, padding included (rows x new positions, summed over calls). */
  positions: number;
}

export class CountingBackend implements Backend {
  readonly counts: ModelCallCounts = { calls: 0, positions: 0 };

  constructor(readonly inner: Backend) {}

  get shape() {
    return this.inner.shape;
  }
  get hasPositionIds() {
    return this.inner.hasPositionIds;
  }
  get fast() {
    return this.inner.fast;
  }
  get device() {
    return this.inner.device;
  }

  createKv(rows: number, capacity: number, shared?: KvStore): KvStore {
    return this.inner.createKv(rows, capacity, shared);
  }

  forward(input: ForwardInput, want: ForwardWant, fetchKv: boolean): Promise<ForwardOutput> {
    this.counts.calls++;
    this.counts.positions += input.rows * input.seq;
    return this.inner.forward(input, want, fetchKv);
  }

  /** The wrapped backend belongs to its model: disposing the counter does not release it. */
  async dispose(): Promise<void> {}
}
