// `uit serve` as a child process through the real binary (bin/uit.js -> dist/): the start line,
// the token options, equality with `uit generate`, and stopping on signals.
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURE, call, tempDir } from './helpers.js';

const PROMPT = 'Definition: In this task, you are given';
const tmp = tempDir('uit-serve-cli-');
const children: ChildProcessWithoutNullStreams[] = [];

beforeAll(() => {
  for (const file of ['commands/serve', 'serve/server', 'serve/protocol', 'serve/chat', 'serve/scheduler', 'serve/errors']) {
    const built = `dist/${file}.js`;
    if (!existsSync(built) || statSync(built).mtimeMs < statSync(`src/${file}.ts`).mtimeMs) {
      throw new Error(`${built} is missing or older than its source: run \`npm run build\` first (npm test does)`);
    }
  }
});
afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  tmp.cleanup();
});

interface Served {
  child: ChildProcessWithoutNullStreams;
  /** The first stdout line. */
  line: string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `uit serve` and resolves once it printed its start line. */
function serve(args: string[], env: Record<string, string> = {}): Promise<Served> {
  const child = spawn(process.execPath, ['bin/uit.js', 'serve', '-m', FIXTURE, '--port', '0', '--threads', '1', ...args], {
    env: { ...process.env, ...env },
  });
  children.push(child);
  let out = '';
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return new Promise((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl !== -1) resolve({ child, line: out.slice(0, nl), stderr: () => err, exited });
    });
    void exited.then(({ code }) => reject(new Error(`uit serve exited with ${code} before its start line: ${err}`)));
  });
}

function uit(...args: string[]) {
  const r = spawnSync(process.execPath, ['bin/uit.js', ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function until(cond: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('uit serve (child process)', () => {
  it('prints its address as JSON with --port 0, needs the token, answers as `uit generate` does, and stops on SIGTERM', async () => {
    const s = await serve(['--json', '--api-key-env', 'UIT_SERVE_TEST_TOKEN'], { UIT_SERVE_TEST_TOKEN: 'tok-123' });
    const info = JSON.parse(s.line);
    expect(Object.keys(info)).toEqual(['url', 'base_url', 'host', 'port', 'model', 'chat_format', 'auth']);
    expect(info).toMatchObject({ host: '127.0.0.1', model: 'tiny-gptj', chat_format: 'plain', auth: true });
    expect(info.port).toBeGreaterThan(0);
    expect(info.base_url).toBe(`http://127.0.0.1:${info.port}/v1`);

    const body = { model: 'tiny-gptj', prompt: PROMPT, n: 2, max_tokens: 12, temperature: 0.8, seed: 5 };
    expect((await call(`${info.base_url}/completions`, { body })).status).toBe(401);
    const r = await call(`${info.base_url}/completions`, { body, headers: { authorization: 'Bearer tok-123' } });
    expect(r.status).toBe(200);
    const gen = uit('generate', '-m', FIXTURE, '--num-samples', '2', '-t', '0.8', '-s', '5', '-n', '12', '--json', PROMPT);
    expect(gen.code).toBe(0);
    const expected = (JSON.parse(gen.stdout) as { results: { text: string }[] }).results.map((x) => x.text);
    expect(r.json.choices.map((c: { text: string }) => c.text)).toEqual(expected);

    s.child.kill('SIGTERM');
    expect(await s.exited).toEqual({ code: 0, signal: null });
    expect(s.stderr()).toContain('POST /v1/completions 200');
    expect(s.stderr()).toMatch(/SIGTERM: finishing the running batch[^\n]*\n[^]*stopped\n$/);
    await expect(call(`${info.base_url}/models`)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  it('finishes the request in flight on SIGINT before exiting; a second signal stops at once', async () => {
    const tokenFile = join(tmp.dir, 'token');
    writeFileSync(tokenFile, 'file-token\n');
    const auth = { authorization: 'Bearer file-token' };
    const long = { model: 'tiny-gptj', prompt: PROMPT, n: 16, max_tokens: 250, temperature: 0.9, seed: 1 };
    for (const signals of [['SIGINT'], ['SIGINT', 'SIGINT']] as const) {
      const s = await serve(['--token-file', tokenFile]);
      const url = /at (http:\/\/127\.0\.0\.1:\d+\/v1) \(chat: plain; bearer token required\); Ctrl-C to stop$/.exec(s.line)?.[1];
      expect(url, s.line).toBeDefined();
      const health = `${url!.replace(/\/v1$/, '')}/health`;
      const reply = call(`${url}/completions`, { body: long, headers: auth }).catch((e: NodeJS.ErrnoException) => e);
      await until(async () => (await call(health)).json.running === true, 'the request to run');
      s.child.kill('SIGINT');
      if (signals.length === 2) {
        // the second signal once the first was handled (two pending signals may merge into one)
        await until(async () => s.stderr().includes('SIGINT: finishing'), 'the first signal to be handled');
        s.child.kill('SIGINT');
      }
      const exit = await s.exited;
      const r = await reply;
      if (signals.length === 1) {
        expect(exit).toEqual({ code: 0, signal: null });
        expect((r as { status: number }).status).toBe(200);
        expect((r as { json: { choices: unknown[] } }).json.choices).toHaveLength(16);
      } else {
        expect(exit.code).toBe(130);
        expect(s.stderr()).toContain('stopped at once');
        expect(r).toBeInstanceOf(Error); // the connection was cut
      }
    }
  });

  it('refuses to start without the token it was told to use, or on a port in use', async () => {
    const unset = uit('serve', '-m', FIXTURE, '--api-key-env', 'UIT_SERVE_TEST_UNSET_VARIABLE');
    expect(unset.code).toBe(2);
    expect(unset.stderr).toContain('--api-key-env UIT_SERVE_TEST_UNSET_VARIABLE: the variable is not set or empty');
    const empty = join(tmp.dir, 'empty');
    writeFileSync(empty, '\n');
    expect(uit('serve', '-m', FIXTURE, '--token-file', empty).stderr).toContain('is empty');
    expect(uit('serve', '-m', FIXTURE, '--api-key-env', 'X', '--token-file', empty).code).toBe(2);

    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    try {
      const port = (blocker.address() as AddressInfo).port;
      const busy = uit('serve', '-m', FIXTURE, '--port', String(port));
      expect(busy.code).toBe(2);
      expect(busy.stderr).toContain(`cannot listen on 127.0.0.1:${port}`);
      expect(busy.stderr).toContain('the port is in use');
    } finally {
      blocker.close();
    }
    const missing = uit('serve', '-m', join(tmp.dir, 'no-model'));
    expect(missing.code).toBe(4);
  });

  it('--help shows the options and an example', () => {
    const r = uit('serve', '--help');
    expect(r.code).toBe(0);
    for (const s of ['--port <n>', '--api-key-env <name>', '--token-file <file>', '--max-tokens <n>', '--max-body-bytes <n>', 'Examples:', 'base_url http://127.0.0.1:8080/v1']) {
      expect(r.stdout).toContain(s);
    }
  });
});
