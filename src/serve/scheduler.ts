// One model, one run at a time, shared fairly between requests. ORT already uses every core for one
// run, so two runs in parallel would only fight over them (and over memory). Requests take turns:
// each is cut into slices of at most `batchRows` rows (prompt x sample), and every turn runs one
// slice, round-robin; a request that had its turn goes to the back of the line, behind the requests
// that arrived meanwhile. So a small request waits for the slice that is running, not for all of a
// big one. vLLM's scheduler shares a model the same way at the step level (continuous batching);
// our engine cannot admit rows into a running batch, so here the turn is a slice.
// Slices of other requests with the same sampling options ride along while the rows fit: their
// prompts are prefilled together and their rows decoded together. A row draws from its own seeded
// stream (seed, sample index), so neither slicing nor batching changes any request's text.
import { generate, type GenerateOptions, type GenerateRequest, type GenerationOutput, type Model } from '../runtime/index.js';
import { ApiError } from './errors.js';

/** Options shared by every request of a batch; the seed travels per request. */
export type BatchOptions = Omit<GenerateOptions, 'seed' | 'onTokens' | 'batchSize'>;

export interface SchedulerOptions {
  /** Most rows (prompt x sample) decoded together, and so the size of a request's slice (default 16). */
  batchRows?: number;
  /** Most requests waiting for their turn; more get a 503 with Retry-After (default 64). */
  maxQueue?: number;
  /** Called with each model run (number of requests with a slice in it, rows). */
  onBatch?: (requests: number, rows: number) => void;
}

/** Part of a request's rows: sample range `firstSample..+numSamples` of the request's prompt `of`. */
export interface SlicePart {
  of: number;
  request: GenerateRequest;
}

/**
 * Cuts requests into slices of at most `maxRows` rows, in row order (prompt by prompt, samples in
 * order), as generate() groups rows into batches. A request without rows joins the slice it falls in,
 * so every request appears in some slice.
 */
export function sliceRequests(requests: readonly GenerateRequest[], maxRows: number): SlicePart[][] {
  const slices: SlicePart[][] = [];
  let cur: SlicePart[] = [];
  let rows = 0;
  requests.forEach((request, of) => {
    const n = request.numSamples ?? 1;
    const first = request.firstSample ?? 0;
    // No rows, or a count generate() refuses (it then says why).
    if (!(Number.isInteger(n) && n > 0)) {
      cur.push({ of, request });
      return;
    }
    for (let s = 0; s < n; ) {
      if (rows === maxRows) {
        slices.push(cur);
        cur = [];
        rows = 0;
      }
      const take = Math.min(n - s, maxRows - rows);
      cur.push({ of, request: { ...request, numSamples: take, firstSample: first + s } });
      s += take;
      rows += take;
    }
  });
  if (cur.length > 0) slices.push(cur);
  return slices;
}

interface Slice {
  parts: SlicePart[];
  rows: number;
}

interface Job {
  opts: BatchOptions;
  key: string;
  /** Slices not run yet, in order. */
  slices: Slice[];
  /** One per request, filled slice by slice. */
  outputs: GenerationOutput[];
  started: boolean;
  settled: boolean;
  resolve: (outputs: GenerationOutput[]) => void;
  reject: (err: unknown) => void;
}

interface Turn {
  job: Job;
  slice: Slice;
}

export interface JobHandle {
  result: Promise<GenerationOutput[]>;
  /** The client went away: drops the request's slices not run yet and fails it with 499. */
  cancel(): void;
}

export class Scheduler {
  /** Requests with slices to run that are not in the running batch, in turn order. */
  private readonly line: Job[] = [];
  private running: Promise<void> | undefined;
  private closed = false;
  private unsettled = 0;
  private readonly batchRows: number;
  private readonly maxQueue: number;

  constructor(
    private readonly model: Model,
    private readonly opts: SchedulerOptions = {},
  ) {
    this.batchRows = opts.batchRows ?? 16;
    this.maxQueue = opts.maxQueue ?? 64;
  }

  /** Requests waiting for their turn (not counting those in the running batch). */
  get waiting(): number {
    return this.line.length;
  }

  get busy(): boolean {
    return this.running !== undefined;
  }

  /** Requests taken and not answered yet: waiting, or in the running batch. */
  get active(): number {
    return this.unsettled;
  }

  submit(requests: GenerateRequest[], opts: BatchOptions): JobHandle {
    if (this.closed) throw shuttingDown();
    if (this.line.length >= this.maxQueue) {
      throw new ApiError(503, `The server is busy: ${this.line.length} requests are waiting. Retry shortly.`, 'server_error', null, 'server_overloaded', { 'retry-after': '1' });
    }
    let job!: Job;
    const result = new Promise<GenerationOutput[]>((resolve, reject) => {
      job = {
        opts,
        key: JSON.stringify(opts),
        slices: sliceRequests(requests, this.batchRows).map((parts) => ({ parts, rows: parts.reduce((n, p) => n + (p.request.numSamples ?? 1), 0) })),
        outputs: requests.map(() => ({ promptTokens: 0, samples: [] })),
        started: false,
        settled: false,
        resolve,
        reject,
      };
    });
    this.unsettled++;
    if (job.slices.length === 0) this.settle(job);
    else {
      this.line.push(job);
      this.pump();
    }
    return {
      result,
      cancel: () => {
        if (job.settled) return;
        this.drop(job);
        this.settle(job, new ApiError(499, 'client closed the request', 'invalid_request_error', null, 'client_closed'));
      },
    };
  }

  /**
   * Refuses new work and fails the requests that have not started with 503; requests that have
   * started run to the end (their clients hold part of an answer's cost already).
   */
  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.line.filter((j) => !j.started)) {
      this.drop(job);
      this.settle(job, shuttingDown());
    }
    while (this.running) await this.running;
  }

  private pump(): void {
    if (this.running || this.line.length === 0) return;
    this.running = (async () => {
      // Let requests that arrive in the same tick join the first batch.
      await new Promise((r) => setImmediate(r));
      while (this.line.length > 0) {
        await this.runBatch(this.takeBatch());
        // Let requests that arrived during the run (still in I/O callbacks) join the line first.
        await new Promise((r) => setImmediate(r));
      }
    })().finally(() => {
      this.running = undefined;
      this.pump();
    });
  }

  /** The next request's next slice, plus the next slice of later requests with the same options while the rows fit. */
  private takeBatch(): Turn[] {
    const head = this.line.shift()!;
    const batch: Turn[] = [{ job: head, slice: head.slices.shift()! }];
    let rows = batch[0].slice.rows;
    for (let i = 0; i < this.line.length; ) {
      const job = this.line[i];
      if (job.key === head.key && rows + job.slices[0].rows <= this.batchRows) {
        const slice = job.slices.shift()!;
        batch.push({ job, slice });
        rows += slice.rows;
        this.line.splice(i, 1);
      } else i++;
    }
    for (const t of batch) t.job.started = true;
    return batch;
  }

  private async runBatch(batch: Turn[]): Promise<void> {
    try {
      const outputs = await this.generate(batch);
      let at = 0;
      for (const t of batch) {
        this.deliver(t, outputs.slice(at, at + t.slice.parts.length));
        at += t.slice.parts.length;
      }
    } catch (err) {
      if (batch.length === 1) this.fail(batch[0].job, err);
      else {
        // One bad request must not fail its neighbours: run each slice alone to find out whose it is.
        for (const t of batch) {
          if (t.job.settled) continue;
          try {
            this.deliver(t, await this.generate([t]));
          } catch (e) {
            this.fail(t.job, e);
          }
        }
      }
    }
    // Back of the line for the requests that had their turn; done ones are answered.
    for (const { job } of batch) {
      if (job.settled) continue;
      if (job.slices.length > 0) this.line.push(job);
      else this.settle(job);
    }
  }

  private deliver(turn: Turn, outputs: GenerationOutput[]): void {
    if (turn.job.settled) return; // the client left during the run
    turn.slice.parts.forEach((part, k) => {
      const into = turn.job.outputs[part.of];
      into.promptTokens = outputs[k].promptTokens;
      into.samples.push(...outputs[k].samples);
    });
  }

  private fail(job: Job, err: unknown): void {
    if (job.settled) return;
    this.drop(job);
    this.settle(job, err);
  }

  /** Takes a request out of the line (a settled request is not put back after its run). */
  private drop(job: Job): void {
    const i = this.line.indexOf(job);
    if (i !== -1) this.line.splice(i, 1);
  }

  private settle(job: Job, err?: unknown): void {
    job.settled = true;
    this.unsettled--;
    if (err === undefined) job.resolve(job.outputs);
    else job.reject(err);
  }

  private async generate(batch: Turn[]): Promise<GenerationOutput[]> {
    const rows = batch.reduce((n, t) => n + t.slice.rows, 0);
    this.opts.onBatch?.(batch.length, rows);
    const result = await generate(
      this.model,
      batch.flatMap((t) => t.slice.parts.map((p) => p.request)),
      { ...batch[0].job.opts, batchSize: this.batchRows },
    );
    return result.outputs;
  }
}

function shuttingDown(): ApiError {
  return new ApiError(503, 'The server is shutting down.', 'server_error', null, 'server_shutting_down', { connection: 'close' });
}
