// JSON over HTTP for remote model APIs: a timeout per attempt (AbortController), retries with
// exponential backoff and jitter on 408/409/429/5xx and network errors (Retry-After honoured),
// and a concurrency limit shared by every request of one client. Built on Node's fetch.
import { RemoteError } from './errors.js';
import { Semaphore } from './semaphore.js';

export interface RetryEvent {
  url: string;
  /** The attempt that failed, 1-based. */
  attempt: number;
  /** How long the client waits before the next attempt. */
  delayMs: number;
  /** Why: `HTTP 429`, `timeout after 2000 ms`, `ECONNREFUSED`, ... */
  reason: string;
  status?: number;
  /** True when the delay came from the server's Retry-After / retry-after-ms header. */
  fromRetryAfter: boolean;
}

export interface HttpOptions {
  /** Per attempt, including reading the body (default 60 s). */
  timeoutMs: number;
  /** Retries after the first attempt (default 4). */
  maxRetries: number;
  /** First backoff step; doubles per retry (default 500 ms). */
  baseDelayMs: number;
  /** Cap of one backoff step (default 30 s). */
  maxDelayMs: number;
  /** A server asking to wait longer than this (Retry-After) fails the request instead (default 120 s). */
  maxRetryAfterMs: number;
  /** Requests in flight at once (default 4). */
  concurrency: number;
  headers: Record<string, string>;
  onRetry?: (event: RetryEvent) => void;
  /** Jitter source in [0, 1). */
  random: () => number;
}

export const DEFAULT_HTTP_OPTIONS: HttpOptions = {
  timeoutMs: 60_000,
  maxRetries: 4,
  baseDelayMs: 500,
  maxDelayMs: 30_000,
  maxRetryAfterMs: 120_000,
  concurrency: 4,
  headers: {},
  random: Math.random,
};

/** Statuses worth another try: request timeout, conflict/lock, rate limit, server errors. */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 409 || status === 429 || status >= 500;
}

/** Milliseconds a response asks to wait: `retry-after-ms` (OpenAI), else `Retry-After` in seconds or as an HTTP date. */
export function retryAfterMs(headers: Headers, now = Date.now()): number | undefined {
  const ms = headers.get('retry-after-ms');
  if (ms !== null && ms.trim() !== '' && Number.isFinite(Number(ms))) return Math.max(0, Number(ms));
  const ra = headers.get('retry-after');
  if (ra === null || ra.trim() === '') return undefined;
  if (/^\s*\d+(\.\d+)?\s*$/.test(ra)) return Math.max(0, Number(ra) * 1000);
  const date = Date.parse(ra);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** "Equal jitter": half the exponential step fixed, half random, so retries spread out but still back off. */
export function backoffMs(retry: number, opts: Pick<HttpOptions, 'baseDelayMs' | 'maxDelayMs' | 'random'>): number {
  const step = Math.min(opts.maxDelayMs, opts.baseDelayMs * 2 ** retry);
  return Math.round(step / 2 + opts.random() * (step / 2));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function networkReason(err: unknown): string {
  const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e?.cause?.code) return e.cause.code;
  if (e?.cause?.message) return e.cause.message;
  return e?.message ?? String(err);
}

function snippet(text: string, max = 300): string {
  const t = text.replace(/\s+/g, ' ').trim();
  return t.length > max ? `${t.slice(0, max)}… (${text.length} chars)` : t || '(empty body)';
}

/** The `error.message` of an OpenAI-style error body, or a snippet of whatever came back. */
export function errorMessageOf(body: string): string {
  try {
    const j = JSON.parse(body) as { error?: { message?: unknown } | string; message?: unknown; detail?: unknown };
    if (typeof j.error === 'string') return j.error;
    if (j.error && typeof j.error.message === 'string') return j.error.message;
    if (typeof j.message === 'string') return j.message;
    if (typeof j.detail === 'string') return j.detail;
  } catch {
    // not JSON: fall through to the raw text
  }
  return snippet(body);
}

class Retryable extends Error {
  constructor(
    readonly reason: string,
    readonly status?: number,
    readonly waitMs?: number,
    /** No HTTP answer at all: refused, reset, DNS. */
    readonly network = false,
  ) {
    super(reason);
  }
}

export class JsonHttpClient {
  readonly options: HttpOptions;
  private readonly semaphore: Semaphore;

  constructor(options: Partial<HttpOptions> = {}) {
    this.options = { ...DEFAULT_HTTP_OPTIONS, ...options, headers: { ...options.headers } };
    this.semaphore = new Semaphore(this.options.concurrency);
  }

  /** Requests now holding a concurrency slot. */
  get inFlight(): number {
    return this.semaphore.inUse;
  }

  async getJson(url: string): Promise<unknown> {
    return this.request('GET', url, undefined);
  }

  async postJson(url: string, body: unknown): Promise<unknown> {
    return this.request('POST', url, JSON.stringify(body));
  }

  private async request(method: 'GET' | 'POST', url: string, body: string | undefined): Promise<unknown> {
    const o = this.options;
    const attempts = o.maxRetries + 1;
    let last: Retryable | undefined;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      try {
        // The slot is held for the attempt only, not while backing off.
        return await this.semaphore.run(() => this.attempt(method, url, body));
      } catch (err) {
        if (!(err instanceof Retryable)) throw err;
        last = err;
        if (attempt === attempts) break;
        if (err.waitMs !== undefined && err.waitMs > o.maxRetryAfterMs) {
          throw new RemoteError(
            `${method} ${url}: ${err.reason}; the server asks to retry after ${Math.ceil(err.waitMs / 1000)} s, ` +
              `more than the ${Math.ceil(o.maxRetryAfterMs / 1000)} s this client waits`,
            { url, status: err.status, attempts: attempt },
          );
        }
        const delayMs = err.waitMs ?? backoffMs(attempt - 1, o);
        o.onRetry?.({ url, attempt, delayMs, reason: err.reason, status: err.status, fromRetryAfter: err.waitMs !== undefined });
        await sleep(delayMs);
      }
    }
    const down = last?.network === true;
    throw new RemoteError(
      `${method} ${url} failed after ${attempts} attempt${attempts === 1 ? '' : 's'}: ${last?.reason ?? 'unknown error'}` +
        (down ? ' (is the server running, and is --base-url right?)' : ''),
      { url, status: last?.status, attempts },
    );
  }

  private async attempt(method: 'GET' | 'POST', url: string, body: string | undefined): Promise<unknown> {
    const o = this.options;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), o.timeoutMs);
    let status: number | undefined;
    try {
      const res = await fetch(url, {
        method,
        headers: { accept: 'application/json', ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...o.headers },
        body,
        signal: controller.signal,
      });
      status = res.status;
      const text = await res.text(); // still under the timeout: a stalled body aborts too
      if (res.ok) {
        try {
          return JSON.parse(text);
        } catch {
          throw new RemoteError(
            `${method} ${url}: malformed JSON in the response (HTTP ${res.status}, content-type ${res.headers.get('content-type') ?? 'none'}): received ${snippet(text)}`,
            { url, status: res.status },
          );
        }
      }
      if (isRetryableStatus(res.status)) {
        throw new Retryable(`HTTP ${res.status}: ${errorMessageOf(text)}`, res.status, res.status === 429 || res.status === 503 ? retryAfterMs(res.headers) : undefined);
      }
      throw new RemoteError(`${method} ${url}: HTTP ${res.status}: ${errorMessageOf(text)}`, { url, status: res.status });
    } catch (err) {
      if (err instanceof RemoteError || err instanceof Retryable) throw err;
      if (controller.signal.aborted) throw new Retryable(`timeout after ${o.timeoutMs} ms${status ? ` (HTTP ${status}, reading the body)` : ''}`);
      const reason = networkReason(err);
      // fetch refuses some ports outright (the Fetch spec's "bad port" list): no retry can help.
      if (reason === 'bad port') throw new RemoteError(`${method} ${url}: fetch refuses this port ("bad port"); use another port`, { url }, { cause: err });
      throw new Retryable(reason, undefined, undefined, true);
    } finally {
      clearTimeout(timer);
    }
  }
}
