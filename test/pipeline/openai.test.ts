// --backend openai: the transfer step takes its candidates from an OpenAI-compatible API through
// the same TextGenerator interface and cache. The API is a real `uit serve` on 127.0.0.1 over the
// tiny fixture, in this process; the CLI runs as a child process.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../src/serve/index.js';
import { FIXTURE, GEN, NIV2_FILES, P3_FILES, SCORE, jsonl, needBuilt, tempDir, uitAsync, type Summary } from './helpers.js';

const tmp = tempDir('uit-pipeline-openai-');
let server: RunningServer;

beforeAll(async () => {
  needBuilt(['commands/transfer', 'transfer/pipeline', 'transfer/pipeline-cli']);
  server = await startServer({ model: FIXTURE, port: 0, threads: 1 });
});
afterAll(async () => {
  await server?.close();
  tmp.cleanup();
});

async function runAsync(args: string[]): Promise<Summary> {
  const r = await uitAsync([...args, '--json']);
  if (r.code !== 0) throw new Error(`uit ${args.join(' ')} exited ${r.code}:\n${r.stderr}`);
  return JSON.parse(r.stdout) as Summary;
}

describe('--backend openai', () => {
  it('uit transfer takes candidates from the API, caches them, and a rerun sends no request', async () => {
    const inputs = [P3_FILES[0], NIV2_FILES[0]];
    const api = ['--backend', 'openai', '--base-url', server.baseUrl, '--api-model', server.modelName];
    const cache = join(tmp.dir, 'cache.sqlite');
    const out = join(tmp.dir, 'cands.jsonl');
    const first = await runAsync(['transfer', ...inputs, ...api, ...GEN, '-o', out, '--cache', cache]);
    expect(first.tasks.ok).toBe(2);
    expect(first.candidates).toEqual({ generated: 6, cached: 0 });
    const served = server.status().batchedRequests;
    expect(served).toBeGreaterThanOrEqual(2);
    expect(first.modelCalls.generation).toBe(served);
    const lines = jsonl<{ task: string; candidates: string[]; transfer: { backend: string; model: string } }>(out);
    expect(lines.map((l) => l.candidates.length)).toEqual([3, 3]);
    expect(lines[0].transfer).toMatchObject({ backend: 'openai', model: `api:${server.baseUrl}#${server.modelName}` });

    const again = await runAsync(['transfer', ...inputs, ...api, ...GEN, '-o', join(tmp.dir, 'again.jsonl'), '--cache', cache]);
    expect(again.candidates).toEqual({ generated: 0, cached: 6 });
    expect(again.modelCalls.total).toBe(0);
    expect(server.status().batchedRequests).toBe(served);

    // convert with the API as transfer model and the local fixture as scorer: provenance says "api"
    const conv = await runAsync([
      'convert', ...inputs, '--to', 'niv2', '--method', 'model', ...api, '--scorer', FIXTURE, ...GEN, ...SCORE,
      '-o', join(tmp.dir, 'out'), '--cache', cache,
    ]);
    expect(conv.tasks.ok).toBe(2);
    expect(conv.modelCalls.generation).toBe(0); // the candidates are cached from uit transfer
    const prov = jsonl<{ method: string; candidates: { definition: string }[] }>(join(tmp.dir, 'out', 'provenance.jsonl'));
    expect(prov.map((p) => p.method)).toEqual(['api', 'api']);
    expect(prov[0].candidates.map((c) => c.definition)).toEqual(lines[0].candidates);
  });
});
