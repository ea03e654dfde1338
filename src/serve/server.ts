// `uit serve`: an OpenAI-compatible HTTP server over a local ONNX model (node:http, no framework).
// GET /v1/models, POST /v1/completions and /v1/chat/completions, GET /health; bearer token, body and token
// limits, errors in OpenAI's JSON shape; one model run at a time (scheduler.ts); graceful close.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { basename } from 'node:path';
import { ExitCode, UitError } from '../errors.js';
import { loadModel, type Device, type Model } from '../runtime/index.js';
import { ChatFormatter } from './chat.js';
import { ApiError, internalError } from './errors.js';
import {
  DEFAULT_LIMITS,
  chatResponse,
  completionResponse,
  parseChatRequest,
  parseCompletionRequest,
  responseId,
  type GenerationPlan,
  type Limits,
  type ProtocolContext,
} from './protocol.js';
import { Scheduler } from './scheduler.js';

export interface ServeOptions {
  /** A model folder (loaded here and disposed on close), or a loaded model (the caller disposes it). */
  model: string | Model;
  /** The name clients send as `model` and /v1/models lists (default: the folder's name). */
  modelName?: string;
  /** Default 127.0.0.1: reachable from this machine only. */
  host?: string;
  /** Default 8080; 0 picks a free port (see RunningServer.port). */
  port?: number;
  /** When set, every request needs `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  limits?: Partial<Limits>;
  /** Largest request body (default 1 MiB); larger gets 413. */
  maxBodyBytes?: number;
  /** Most rows (prompt x sample) decoded together (default 16). */
  batchRows?: number;
  /** Most requests waiting for their turn at the model (default 64); more get 503 with Retry-After. */
  maxQueue?: number;
  /** Connection timeouts and the connection cap (defaults: DEFAULT_CONNECTION_LIMITS). */
  connections?: Partial<ConnectionLimits>;
  /** A Jinja chat template file, instead of the model folder's. */
  chatTemplate?: string;
  /** When `model` is a folder. */
  device?: Device;
  threads?: number;
  /** One line per request and per notable event (default: none). */
  log?: (line: string) => void;
}

export interface RunningServer {
  /** `http://HOST:PORT` */
  url: string;
  /** `http://HOST:PORT/v1`: what OpenAI SDKs take as base_url. */
  baseUrl: string;
  host: string;
  port: number;
  modelName: string;
  /** Where chat prompts come from: a template file, or `plain` (docs/serve.md). */
  chatFormat: string;
  model: Model;
  /** Requests waiting, whether a batch runs, and counts so far (for health checks and tests). */
  status(): ServerStatus;
  /**
   * Graceful stop: no new connections, queued requests answered 503, the running batch finishes
   * and is answered, then connections close and an owned model is disposed. Idempotent.
   */
  close(): Promise<void>;
}

export interface ServerStatus {
  /** Requests waiting for their turn at the model (a started request counts between its slices). */
  waiting: number;
  /** Requests taken and not answered yet: waiting, or in the running batch. */
  active: number;
  running: boolean;
  /** Model runs so far, and the request slices they served (more than runs: requests shared runs). */
  batches: number;
  batchedRequests: number;
}

export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;

/** How long a client may take, and how many may be connected: slow or idle clients must not pile up. */
export interface ConnectionLimits {
  /** Most ms from a connection (or the end of the previous response) to the end of the request headers; then 408 and close. */
  headersTimeoutMs: number;
  /** Most ms to receive a whole request, body included; then 408 and close. Generating the answer does not count. */
  requestTimeoutMs: number;
  /** Most ms a keep-alive connection stays open idle after a response (Node adds 1 s of grace). */
  keepAliveTimeoutMs: number;
  /** Most open connections; more are closed as they arrive. */
  maxConnections: number;
}

export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = { headersTimeoutMs: 10_000, requestTimeoutMs: 60_000, keepAliveTimeoutMs: 5_000, maxConnections: 256 };
/** Bytes of an oversize body read (and dropped) so the client can read its 413; past this the connection is cut. */
const OVERSIZE_DRAIN_BYTES = 16 * 1024 * 1024;

type Route = 'models' | 'model' | 'completions' | 'chat';
const ROUTES: { pattern: RegExp; route: Route; method: 'GET' | 'POST' }[] = [
  { pattern: /^\/v1\/models\/?$/, route: 'models', method: 'GET' },
  { pattern: /^\/v1\/models\/(.+)$/, route: 'model', method: 'GET' },
  { pattern: /^\/v1\/completions\/?$/, route: 'completions', method: 'POST' },
  // The pre-1.0 OpenAI Python SDK's `engine=` argument (2022-23 scripts): the model is in the path.
  { pattern: /^\/v1\/engines\/([^/]+)\/completions\/?$/, route: 'completions', method: 'POST' },
  { pattern: /^\/v1\/engines\/([^/]+)\/chat\/completions\/?$/, route: 'chat', method: 'POST' },
  { pattern: /^\/v1\/chat\/completions\/?$/, route: 'chat', method: 'POST' },
];

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

export async function startServer(opts: ServeOptions): Promise<RunningServer> {
  const owned = typeof opts.model === 'string';
  const model = typeof opts.model === 'string' ? await loadModel(opts.model, { device: opts.device, threads: opts.threads }) : opts.model;
  try {
    return await listen(model, owned, opts);
  } catch (err) {
    if (owned) await model.dispose();
    throw err;
  }
}

async function listen(model: Model, owned: boolean, opts: ServeOptions): Promise<RunningServer> {
  const log = opts.log ?? (() => {});
  const modelName = opts.modelName ?? basename(model.folder.dir);
  const chat = ChatFormatter.forModelFolder(model.folder.dir, opts.chatTemplate);
  const limits: Limits = { ...DEFAULT_LIMITS, ...opts.limits };
  for (const [k, v] of Object.entries(limits)) {
    if (!Number.isInteger(v) || v < 1) throw new UitError(`serve: the ${k} limit must be a positive integer, got ${v}`, ExitCode.USAGE);
  }
  const conn = connectionLimits(opts.connections);
  const ctx: ProtocolContext = { modelName, tokenizer: model.tokenizer, chat, limits, contextLength: model.info.maxPositions };
  const maxBody = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const keyDigest = opts.apiKey !== undefined && opts.apiKey !== '' ? digest(opts.apiKey) : undefined;
  const counts = { batches: 0, batchedRequests: 0 };
  const scheduler = new Scheduler(model, {
    batchRows: opts.batchRows,
    maxQueue: opts.maxQueue,
    onBatch: (requests, rows) => {
      counts.batches++;
      counts.batchedRequests += requests;
      if (requests > 1) log(`batch: ${requests} requests, ${rows} rows in one run`);
    },
  });
  const created = Math.floor(Date.now() / 1000);
  const inFlight = new Set<Promise<void>>();
  const status = (): ServerStatus => ({ waiting: scheduler.waiting, active: scheduler.active, running: scheduler.busy, ...counts });
  let draining = false;

  function authorize(req: IncomingMessage): void {
    if (!keyDigest) return;
    const header = req.headers.authorization;
    const m = header?.match(/^Bearer\s+(.+)$/i);
    if (!m) {
      throw new ApiError(401, "You didn't provide an API key. Send it in the header 'Authorization: Bearer <key>'.", 'invalid_request_error', null, 'missing_api_key', {
        'www-authenticate': 'Bearer',
      });
    }
    // Compare digests: equal lengths for timingSafeEqual, and no timing hint about the key.
    if (!timingSafeEqual(digest(m[1].trim()), keyDigest)) {
      throw new ApiError(401, 'Incorrect API key provided.', 'invalid_request_error', null, 'invalid_api_key', { 'www-authenticate': 'Bearer' });
    }
  }

  async function generateFor(plan: GenerationPlan, res: ServerResponse) {
    const job = scheduler.submit(
      plan.prompts.map((promptIds) => ({ promptIds, numSamples: plan.n, seed: plan.seed })),
      plan.options,
    );
    const onClose = () => {
      if (!res.writableFinished) job.cancel();
    };
    res.once('close', onClose);
    try {
      return await job.result;
    } finally {
      res.off('close', onClose);
    }
  }

  async function dispatch(route: Route, req: IncomingMessage, res: ServerResponse, match: RegExpMatchArray): Promise<[number, unknown]> {
    const modelEntry = { id: modelName, object: 'model', created, owned_by: 'uit' };
    switch (route) {
      case 'models':
        return [200, { object: 'list', data: [modelEntry] }];
      case 'model': {
        const id = decodePathPart(match[1]);
        if (id !== modelName) throw new ApiError(404, `The model '${id}' does not exist.`, 'invalid_request_error', 'model', 'model_not_found');
        return [200, modelEntry];
      }
      case 'completions': {
        const plan = parseCompletionRequest(withEngine(await readJson(req, maxBody), match), ctx);
        const outputs = await generateFor(plan, res);
        return [200, completionResponse(responseId('cmpl'), modelName, outputs)];
      }
      case 'chat': {
        const plan = parseChatRequest(withEngine(await readJson(req, maxBody), match), ctx);
        const outputs = await generateFor(plan, res);
        return [200, chatResponse(responseId('chatcmpl'), modelName, outputs[0])];
      }
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const t0 = performance.now();
    const path = (req.url ?? '/').split('?')[0];
    let code = 500;
    let body: unknown;
    let headers: Record<string, string> = {};
    try {
      if (draining) throw new ApiError(503, 'The server is shutting down.', 'server_error', null, 'server_shutting_down');
      if (path === '/health' && req.method === 'GET') {
        // Open without the token (probes rarely carry one): counts only, no model facts.
        const st = status();
        send(res, 200, { status: 'ok', waiting: st.waiting, running: st.running }, {});
        return;
      }
      authorize(req);
      const found = ROUTES.map((r) => ({ r, m: path.match(r.pattern) })).filter((x) => x.m);
      if (found.length === 0) throw new ApiError(404, `Unknown request URL: ${req.method} ${path}.`, 'invalid_request_error', null, 'unknown_url');
      const hit = found.find((x) => x.r.method === req.method);
      if (!hit) {
        const allow = [...new Set(found.map((x) => x.r.method))].join(', ');
        throw new ApiError(405, `Method ${req.method} is not allowed for ${path}; use ${allow}.`, 'invalid_request_error', null, 'method_not_allowed', { allow });
      }
      [code, body] = await dispatch(hit.r.route, req, res, hit.m!);
    } catch (err) {
      let e: ApiError;
      if (err instanceof ApiError) e = err;
      else {
        const id = responseId('req');
        log(`error ${id} on ${req.method} ${path}: ${(err as Error)?.stack ?? String(err)}`);
        e = internalError(id);
      }
      [code, body, headers] = [e.status, e.body(), e.headers];
    }
    if (code === 499) return log(`${req.method} ${path} client closed the request`);
    if (draining) headers = { ...headers, connection: 'close' };
    send(res, code, body, headers);
    log(`${req.method} ${path} ${code} ${Math.round(performance.now() - t0)} ms`);
  }

  const server: Server = createServer(
    {
      headersTimeout: conn.headersTimeoutMs,
      requestTimeout: conn.requestTimeoutMs,
      // Node checks the header and request timeouts every 30 s by default, which would stretch a 10 s limit to 40.
      connectionsCheckingInterval: Math.max(10, Math.min(1000, Math.floor(conn.headersTimeoutMs / 4))),
    },
    (req, res) => {
      const p = handle(req, res).catch((err) => log(`error: ${(err as Error)?.stack ?? String(err)}`));
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
    },
  );
  server.keepAliveTimeout = conn.keepAliveTimeoutMs;
  // Over the cap, node:http closes a new connection at once (the client sees a reset): cheaper than
  // reading its request to answer 503, which is what a flood of connections would want.
  server.maxConnections = conn.maxConnections;
  let dropped = 0;
  let lastDropLog = 0;
  server.on('drop', () => {
    dropped++;
    const now = Date.now();
    if (now - lastDropLog < 10_000) return; // a flood must not flood the log too
    log(`refused ${dropped} connection(s): ${conn.maxConnections} open (--max-connections)`);
    dropped = 0;
    lastDropLog = now;
  });

  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      const hint = err.code === 'EADDRINUSE' ? ' (the port is in use; pick another with --port, or --port 0 for a free one)' : '';
      reject(new UitError(`cannot listen on ${host}:${opts.port ?? 8080}: ${err.message}${hint}`, ExitCode.USAGE, { cause: err }));
    };
    server.once('error', onError);
    server.listen(opts.port ?? 8080, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  const url = `http://${shownHost}:${port}`;
  if (!isLoopback(host) && !keyDigest) log(`warning: listening on ${host} without a token: anyone who can reach this port can use the model (--api-key-env or --token-file)`);

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      draining = true;
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      await scheduler.close();
      await Promise.allSettled([...inFlight]);
      server.closeIdleConnections();
      // A client still sending a body, or holding a connection open, gets a short grace.
      const force = setTimeout(() => server.closeAllConnections(), 1000);
      await stopped;
      clearTimeout(force);
      if (owned) await model.dispose();
    })();
    return closing;
  };

  return { url, baseUrl: `${url}/v1`, host, port, modelName, chatFormat: chat.source, model, status, close };
}

function connectionLimits(given: Partial<ConnectionLimits> = {}): ConnectionLimits {
  const c: ConnectionLimits = { ...DEFAULT_CONNECTION_LIMITS, ...given };
  for (const [k, v] of Object.entries(c)) {
    if (!Number.isInteger(v) || v < 1) throw new UitError(`serve: ${k} must be a positive integer, got ${v}`, ExitCode.USAGE);
  }
  if (c.headersTimeoutMs > c.requestTimeoutMs) {
    throw new UitError(`serve: the headers timeout (${c.headersTimeoutMs} ms) must not be longer than the request timeout (${c.requestTimeoutMs} ms), which includes it`, ExitCode.USAGE);
  }
  return c;
}

/** On /v1/engines/{id}/... the path names the model. */
function withEngine(body: Record<string, unknown>, match: RegExpMatchArray): Record<string, unknown> {
  return match[1] === undefined ? body : { ...body, model: decodePathPart(match[1]) };
}

function decodePathPart(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new ApiError(400, `Malformed percent-encoding in the URL: ${part}`, 'invalid_request_error', null, 'invalid_url');
  }
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string>): void {
  if (res.headersSent || res.destroyed) return;
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, {
    ...headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'x-request-id': randomBytes(8).toString('hex'),
  });
  res.end(text);
}

/** The request body as JSON: 413 past `limit` bytes, 400 when it does not parse or is not an object. */
async function readJson(req: IncomingMessage, limit: number): Promise<Record<string, unknown>> {
  const tooLarge = () =>
    new ApiError(413, `The request body is larger than this server's limit of ${limit} bytes (uit serve --max-body-bytes).`, 'invalid_request_error', null, 'request_too_large', {
      connection: 'close',
    });
  const declared = Number(req.headers['content-length'] ?? NaN);
  const raw = await new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = declared > limit;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) over = true;
      if (!over) chunks.push(chunk);
      else if (size > limit + OVERSIZE_DRAIN_BYTES) {
        req.removeAllListeners('data');
        req.pause();
        reject(tooLarge());
      }
    });
    req.on('end', () => (over ? reject(tooLarge()) : resolve(Buffer.concat(chunks))));
    req.on('error', reject);
    req.on('close', () => {
      if (!req.complete) reject(new ApiError(499, 'client closed the request'));
    });
  });
  let value: unknown;
  try {
    value = JSON.parse(raw.toString('utf8'));
  } catch (err) {
    throw new ApiError(400, `We could not parse the JSON body of your request: ${(err as Error).message}. Send a JSON object with 'Content-Type: application/json'.`, 'invalid_request_error', null, 'invalid_json');
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ApiError(400, 'The request body must be a JSON object.', 'invalid_request_error', null, 'invalid_json');
  }
  return value as Record<string, unknown>;
}
