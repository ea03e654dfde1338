// Shared pieces of the serve tests: real HTTP calls to a server on 127.0.0.1.
import { request } from 'node:http';
import { afterAll, beforeAll } from 'vitest';
import { loadModel, type Model } from '../../src/runtime/index.js';
import { startServer, type RunningServer, type ServeOptions } from '../../src/serve/index.js';
import { FIXTURE } from '../runtime/helpers.js';

export { FIXTURE, tempDir, copyFixture, withForward } from '../runtime/helpers.js';

/**
 * For a test file: the fixture model, loaded before its tests and disposed after them, and servers
 * over it on a free port whose log lines go to `logs`.
 */
export function fixtureServers(): { model: () => Model; logs: string[]; serveWith: (opts?: Partial<ServeOptions>) => Promise<RunningServer> } {
  let model: Model | undefined;
  const logs: string[] = [];
  beforeAll(async () => {
    model = await loadModel(FIXTURE, { threads: 1 });
  });
  afterAll(async () => {
    await model?.dispose();
  });
  return { model: () => model!, logs, serveWith: (opts = {}) => startServer({ model: model!, port: 0, log: (l) => logs.push(l), ...opts }) };
}

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  /** The parsed body; `any` because tests read OpenAI's response fields directly. */
  json: any;
}

/** One HTTP request with node:http (not fetch: tests need raw bodies, chunked uploads and exact headers). */
export function call(
  url: string,
  opts: { method?: string; body?: string | Buffer | object; headers?: Record<string, string>; chunked?: boolean } = {},
): Promise<Reply> {
  const raw = opts.body === undefined ? undefined : typeof opts.body === 'string' || Buffer.isBuffer(opts.body) ? opts.body : JSON.stringify(opts.body);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: opts.method ?? (raw === undefined ? 'GET' : 'POST'),
        headers: {
          ...(raw !== undefined ? { 'content-type': 'application/json' } : {}),
          ...(raw !== undefined && !opts.chunked ? { 'content-length': String(Buffer.byteLength(raw)) } : {}),
          ...opts.headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (raw !== undefined && opts.chunked) {
      // Several writes without a content-length: the server sees a chunked body of unknown size.
      const buf = Buffer.from(raw);
      const step = Math.max(1, Math.ceil(buf.length / 4));
      for (let i = 0; i < buf.length; i += step) req.write(buf.subarray(i, i + step));
      req.end();
    } else req.end(raw);
  });
}

/** An ASCII letter or digit whose first occurrence in `text` is at `from` or later: a stop string that surely cuts there. */
export function stopIn(text: string, from = 1): { stop: string; index: number } {
  for (let i = from; i < text.length; i++) {
    if (/[A-Za-z0-9]/.test(text[i]) && text.indexOf(text[i]) === i) return { stop: text[i], index: i };
  }
  throw new Error(`no usable stop character in ${JSON.stringify(text)}`);
}

/** Polls `cond` every 5 ms, for up to 20 s. */
export async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 4000 && !cond(); i++) await new Promise((r) => setTimeout(r, 5));
  if (!cond()) throw new Error(`timed out waiting for ${what}`);
}
