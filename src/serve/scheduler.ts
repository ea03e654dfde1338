// One model, one run at a time: requests queue here and the model runs them in order. ORT already
// uses every core for one run, so two runs in parallel would only fight over them (and over
// memory). Queued requests with the same sampling options are batched into one generate() call:
// their prompts are prefilled together and their rows decoded together. A request's text does not
// depend on its batch (each row draws from its own seeded stream), so batching is invisible to clients.
import { generate, type GenerateOptions, type GenerateRequest, type GenerationOutput, type Model } from '../runtime/index.js';
import { ApiError } from './errors.js';

/** Options shared by every request of a batch; the seed travels per request. */
export type BatchOptions = Omit<GenerateOptions, 'seed' | 'onTokens' | 'batchSize'>;

export interface SchedulerOptions {
  /** Most rows (prompt x sample) decoded together; a bigger request still runs, alone (default 16). */
  batchRows?: number;
  /** Most requests waiting; more get a 503 with Retry-After (default 64). */
  maxQueue?: number;
  /** Called with each batch run (number of requests, rows). */
  onBatch?: (requests: number, rows: number) => void;
}

interface Job {
  requests: GenerateRequest[];
  opts: BatchOptions;
  key: string;
  rows: number;
  resolve: (outputs: GenerationOutput[]) => void;
  reject: (err: unknown) => void;
}

export interface JobHandle {
  result: Promise<GenerationOutput[]>;
  /** Drops the job if it has not started (the client went away). */
  cancel(): void;
}

export class Scheduler {
  private readonly queue: Job[] = [];
  private running: Promise<void> | undefined;
  private closed = false;
  private readonly batchRows: number;
  private readonly maxQueue: number;

  constructor(
    private readonly model: Model,
    private readonly opts: SchedulerOptions = {},
  ) {
    this.batchRows = opts.batchRows ?? 16;
    this.maxQueue = opts.maxQueue ?? 64;
  }

  /** Requests waiting (not counting the batch that runs). */
  get waiting(): number {
    return this.queue.length;
  }

  get busy(): boolean {
    return this.running !== undefined;
  }

  submit(requests: GenerateRequest[], opts: BatchOptions): JobHandle {
    if (this.closed) throw shuttingDown();
    if (this.queue.length >= this.maxQueue) {
      throw new ApiError(503, `The server is busy: ${this.queue.length} requests are waiting. Retry shortly.`, 'server_error', null, 'server_overloaded', { 'retry-after': '1' });
    }
    let job!: Job;
    const result = new Promise<GenerationOutput[]>((resolve, reject) => {
      job = {
        requests,
        opts,
        key: JSON.stringify(opts),
        rows: requests.reduce((n, r) => n + (r.numSamples ?? 1), 0),
        resolve,
        reject,
      };
    });
    this.queue.push(job);
    this.pump();
    return {
      result,
      cancel: () => {
        const i = this.queue.indexOf(job);
        if (i === -1) return; // running or done: a run cannot be stopped between ORT steps
        this.queue.splice(i, 1);
        job.reject(new ApiError(499, 'client closed the request', 'invalid_request_error', null, 'client_closed'));
      },
    };
  }

  /** Refuses new work, fails the queued requests with 503, and waits for the running batch. */
  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.queue.splice(0)) job.reject(shuttingDown());
    await this.running;
  }

  private pump(): void {
    if (this.running || this.queue.length === 0) return;
    this.running = (async () => {
      // Let requests that arrive in the same tick join the first batch.
      await new Promise((r) => setImmediate(r));
      while (this.queue.length > 0) await this.runBatch(this.takeBatch());
    })().finally(() => {
      this.running = undefined;
      this.pump();
    });
  }

  /** The oldest job, plus later jobs with the same options while the rows fit. */
  private takeBatch(): Job[] {
    const first = this.queue.shift()!;
    const batch = [first];
    let rows = first.rows;
    for (let i = 0; i < this.queue.length; ) {
      const job = this.queue[i];
      if (job.key === first.key && rows + job.rows <= this.batchRows) {
        batch.push(job);
        rows += job.rows;
        this.queue.splice(i, 1);
      } else i++;
    }
    return batch;
  }

  private async runBatch(batch: Job[]): Promise<void> {
    try {
      const outputs = await this.generate(batch);
      let at = 0;
      for (const job of batch) {
        job.resolve(outputs.slice(at, at + job.requests.length));
        at += job.requests.length;
      }
    } catch (err) {
      if (batch.length === 1) {
        batch[0].reject(err);
        return;
      }
      // One bad request must not fail its neighbours: run each alone to find out whose it is.
      for (const job of batch) {
        try {
          job.resolve(await this.generate([job]));
        } catch (e) {
          job.reject(e);
        }
      }
    }
  }

  private async generate(batch: Job[]): Promise<GenerationOutput[]> {
    const rows = batch.reduce((n, j) => n + j.rows, 0);
    this.opts.onBatch?.(batch.length, rows);
    const result = await generate(
      this.model,
      batch.flatMap((j) => j.requests),
      { ...batch[0].opts, batchSize: this.batchRows },
    );
    return result.outputs;
  }
}

function shuttingDown(): ApiError {
  return new ApiError(503, 'The server is shutting down.', 'server_error', null, 'server_shutting_down', { connection: 'close' });
}
