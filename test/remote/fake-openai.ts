// A small OpenAI-style endpoint on 127.0.0.1 for the client tests: real HTTP, a handler per test,
// and server-side counts (requests, bodies, the most requests in flight at once).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Seen {
  method: string;
  path: string;
  auth: string | undefined;
  body: Record<string, unknown>;
}

export type Handler = (req: Seen, res: ServerResponse, n: number) => void | Promise<void>;

export interface FakeServer {
  url: string;
  baseUrl: string;
  seen: Seen[];
  maxInFlight: number;
  inFlight: number;
  setHandler(h: Handler): void;
  close(): Promise<void>;
}

export function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

/** Answers like /v1/completions: choice i is `${prefix}${i}` (n choices when asked). */
export function completion(body: Record<string, unknown>, text: (i: number) => string, finish = 'stop'): unknown {
  const n = typeof body.n === 'number' ? body.n : 1;
  return {
    id: 'cmpl-test',
    object: 'text_completion',
    model: body.model,
    choices: Array.from({ length: n }, (_, i) => ({ text: text(i), index: i, finish_reason: finish, logprobs: null })),
    usage: { prompt_tokens: 5, completion_tokens: 3 * n, total_tokens: 5 + 3 * n },
  };
}

export async function startFakeServer(initial: Handler): Promise<FakeServer> {
  let handler = initial;
  const state = {
    seen: [] as Seen[],
    maxInFlight: 0,
    inFlight: 0,
  };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const seen: Seen = {
        method: req.method ?? '',
        path: req.url ?? '',
        auth: req.headers.authorization,
        body: raw ? (JSON.parse(raw) as Record<string, unknown>) : {},
      };
      state.seen.push(seen);
      state.inFlight++;
      state.maxInFlight = Math.max(state.maxInFlight, state.inFlight);
      res.on('close', () => state.inFlight--);
      try {
        await handler(seen, res, state.seen.length);
      } catch (err) {
        if (!res.headersSent) json(res, 599, { error: { message: String(err) } });
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    baseUrl: `${url}/v1`,
    get seen() {
      return state.seen;
    },
    get maxInFlight() {
      return state.maxInFlight;
    },
    get inFlight() {
      return state.inFlight;
    },
    setHandler(h: Handler) {
      handler = h;
      state.seen.length = 0;
      state.maxInFlight = 0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A port that was just listening and is now closed: connections are refused. */
export async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}
