// `uit serve`'s connection limits (issue 21): slow or idle clients are timed out and the number of
// open connections is capped, in-process and through the binary's options. Raw TCP on 127.0.0.1,
// the tiny GPT-J fixture. Each test has a short limit of its own: with node's defaults (60 s for
// headers, 300 s for a request, checked every 30 s) they would hang, and fail.
import { spawn, spawnSync } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../src/serve/index.js';
import { FIXTURE, call, fixtureServers, until, withForward } from './helpers.js';

const NAME = 'tiny-gptj';
const { model, logs, serveWith } = fixtureServers();

interface Raw {
  socket: Socket;
  /** Everything the server sent, once it closed the connection. */
  closed: Promise<string>;
  received: () => string;
}

/** A raw TCP connection that sends `send` (if any) and records what comes back. */
function raw(port: number, send?: string): Promise<Raw> {
  return new Promise((resolve, reject) => {
    let data = '';
    const socket = connect(port, '127.0.0.1');
    const closed = new Promise<string>((done) => socket.on('close', () => done(data)));
    socket.on('data', (d: Buffer) => (data += d.toString()));
    socket.on('error', () => {}); // a reset shows as the close
    socket.once('connect', () => {
      if (send) socket.write(send);
      resolve({ socket, closed, received: () => data });
    });
    socket.once('error', reject);
  });
}


const completionHead = (port: number, length: number) =>
  `POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n`;

describe('timeouts', () => {
  let s: RunningServer;
  beforeAll(async () => {
    s = await serveWith({ connections: { headersTimeoutMs: 300, requestTimeoutMs: 600, keepAliveTimeoutMs: 2000 } });
  });
  afterAll(() => s.close());

  it('a connection that sends nothing, or half its headers, gets 408 and is closed', { timeout: 10_000 }, async () => {
    const silent = await raw(s.port);
    const half = await raw(s.port, `POST /v1/completions HTTP/1.1\r\nHost: x\r\n`);
    for (const c of [silent, half]) expect(await c.closed).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
  });

  it('a body that stalls gets 408 and is closed; the server goes on serving', { timeout: 10_000 }, async () => {
    const body = JSON.stringify({ model: NAME, prompt: 'x', max_tokens: 2 });
    const slow = await raw(s.port, completionHead(s.port, body.length) + body.slice(0, 10));
    expect(await slow.closed).toMatch(/^HTTP\/1\.1 408 /);
    expect((await call(`${s.baseUrl}/completions`, { body })).status).toBe(200);
  });

  it('an idle keep-alive connection is closed after its timeout, which the response announces', { timeout: 10_000 }, async () => {
    const body = JSON.stringify({ model: NAME, prompt: 'x', max_tokens: 2 });
    const c = await raw(s.port, completionHead(s.port, body.length) + body);
    const text = await c.closed;
    expect(text).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(text).toMatch(/\r\nkeep-alive: timeout=2\r\n/i);
  });

  it('generating for longer than the request timeout is not cut: the timeout covers receiving', { timeout: 60_000 }, async () => {
    // 20 forwards of at least 50 ms each: over the 600 ms request timeout, whatever the machine.
    const slowed = withForward(model(), async (next, ...args) => {
      await new Promise((r) => setTimeout(r, 50));
      return next(...args);
    });
    const slow = await startServer({ model: slowed, port: 0, connections: { headersTimeoutMs: 300, requestTimeoutMs: 600 } });
    try {
      const t0 = performance.now();
      const r = await call(`${slow.baseUrl}/completions`, { body: { model: NAME, prompt: 'x', max_tokens: 20, stop: [], seed: 1 } });
      expect(r.status).toBe(200);
      expect(r.json.usage.completion_tokens).toBe(20);
      expect(performance.now() - t0).toBeGreaterThan(600);
    } finally {
      await slow.close();
    }
  });
});

describe('connection cap', () => {
  it('closes connections over the cap as they arrive, logs it, and accepts again once one closes', { timeout: 20_000 }, async () => {
    const s = await serveWith({ connections: { maxConnections: 3, keepAliveTimeoutMs: 60_000 } });
    try {
      // Three kept-alive connections, each answered once: the server surely counts them.
      const held = await Promise.all([0, 1, 2].map(() => raw(s.port, 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n')));
      await until(() => held.every((h) => h.received().includes('"status":"ok"')), 'the held connections to be answered');
      const over = await raw(s.port, 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
      expect(await over.closed).toBe(''); // closed unanswered
      expect(logs.some((l) => /^refused 1 connection\(s\): 3 open \(--max-connections\)$/.test(l))).toBe(true);
      for (const h of held) expect(h.socket.destroyed).toBe(false); // the held ones are untouched
      held[0].socket.destroy();
      await held[0].closed;
      // The server hears of the close a moment later: retry until a fourth connection is served.
      let status = 0;
      for (let i = 0; i < 100 && status !== 200; i++) {
        status = await call(`${s.url}/health`, { headers: { connection: 'close' } }).then((r) => r.status, () => 0);
        if (status !== 200) await new Promise((r) => setTimeout(r, 20));
      }
      expect(status).toBe(200);
      for (const h of held.slice(1)) h.socket.destroy();
    } finally {
      await s.close();
    }
  });

  it('refuses impossible limits', async () => {
    await expect(serveWith({ connections: { headersTimeoutMs: 5000, requestTimeoutMs: 1000 } })).rejects.toThrow(/headers timeout \(5000 ms\) must not be longer than the request timeout/);
    await expect(serveWith({ connections: { maxConnections: 0 } })).rejects.toThrow(/maxConnections must be a positive integer/);
  });
});

describe('uit serve options', () => {
  it('--headers-timeout and --max-connections reach the server', { timeout: 60_000 }, async () => {
    const child = spawn(process.execPath, ['bin/uit.js', 'serve', '-m', FIXTURE, '--port', '0', '--json', '--threads', '1', '--headers-timeout', '0.3', '--max-connections', '1']);
    try {
      const line = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes('\n')) resolve(out.split('\n')[0]);
        });
        child.once('exit', (code) => reject(new Error(`uit serve exited with ${code}`)));
      });
      const { port } = JSON.parse(line) as { port: number };
      const first = await raw(port, 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
      await until(() => first.received().includes('"status":"ok"'), 'the first connection to be answered');
      const over = await raw(port, 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
      expect(await over.closed).toBe(''); // --max-connections 1
      first.socket.destroy();
      // A silent connection is answered 408 (--headers-timeout 0.3), once the server has heard of the close.
      let text = '';
      for (let i = 0; i < 100 && text === ''; i++) text = await (await raw(port)).closed;
      expect(text).toMatch(/^HTTP\/1\.1 408 /);
    } finally {
      child.kill('SIGTERM');
    }
  });

  it('--help lists the limits with their defaults', () => {
    const out = spawnSync(process.execPath, ['bin/uit.js', 'serve', '--help'], { encoding: 'utf8' }).stdout;
    for (const [opt, def] of [['--headers-timeout', '10'], ['--request-timeout', '60'], ['--keep-alive-timeout', '5'], ['--max-connections', '256']]) {
      const entry = out.slice(out.indexOf(`${opt} <`)).split(/\n  -/)[0].replace(/\s+/g, ' ');
      expect(entry, opt).toContain(`(default: ${def})`);
    }
  });
});
