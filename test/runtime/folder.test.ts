// Model folders: clear errors for what is missing or malformed, the slow-only and gen-only
// layouts, execution provider errors, and the memoised model identity.
import { appendFileSync, copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ExitCode, ModelError } from '../../src/errors.js';
import {
  KvCache,
  generate,
  inspectModelFolder,
  loadModel,
  modelIdentity,
  prefill,
  providerReport,
  scoreContinuations,
  step,
} from '../../src/runtime/index.js';
import { checkModelConfig } from '../../src/runtime/config-check.js';
import type { GraphSpec } from '../../src/runtime/graph-spec.js';
import { FIXTURE, copyFixture, tempDir } from './helpers.js';

const BAD = resolve('test/runtime/fixtures');

let tmp: ReturnType<typeof tempDir>;
beforeEach(() => {
  tmp = tempDir();
});
afterEach(() => tmp.cleanup());

async function modelError(dir: string, opts = {}): Promise<ModelError> {
  const err = await loadModel(dir, { threads: 1, ...opts }).then(
    async (m) => {
      await m.dispose();
      return undefined;
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ModelError);
  expect((err as ModelError).exitCode).toBe(ExitCode.MODEL);
  return err as ModelError;
}

/** A copy of the fixture with config.json changed by `edit`. */
function withConfig(into: string, edit: (c: Record<string, unknown>) => void): string {
  const dir = copyFixture(into);
  const file = join(dir, 'config.json');
  const config = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  edit(config);
  writeFileSync(file, JSON.stringify(config));
  return dir;
}

describe('config.json is checked against the graph and the tokenizer (issue 21)', () => {
  it('refuses numbers that are not positive integers, and numbers the graph contradicts', async () => {
    const cases: Array<[(c: Record<string, unknown>) => void, RegExp]> = [
      [(c) => (c.n_positions = -5), /config\.json: n_positions is -5, not a positive integer/],
      [(c) => (c.n_positions = 'long'), /n_positions is "long", not a positive integer/],
      [(c) => (c.n_layer = 7), /config\.json: n_layer is 7 but .*model\.fast\.onnx has 2 layers/],
      [(c) => (c.n_head = 3), /n_head is 3 but .*has 4 KV heads/],
      [(c) => (c.n_embd = 96), /n_embd \/ n_head is 24 but .*has heads of 16/],
      [(c) => (c.vocab_size = 100), /vocab_size is 100 but .*model\.fast\.onnx has 257 logits/],
    ];
    for (const [i, [edit, message]] of cases.entries()) {
      const err = await modelError(withConfig(join(tmp.dir, `c${i}`), edit));
      expect(err.message).toMatch(message);
    }
    // and the three wrong at once, as the audit found it: generate refused it, exit code 4
    const r = spawnSync(process.execPath, ['bin/uit.js', 'generate', '-m', withConfig(join(tmp.dir, 'all'), (c) => Object.assign(c, { n_layer: 7, n_head: 3, vocab_size: 100 })), '-n', '2', 'Hi'], { encoding: 'utf8' });
    expect(r.status).toBe(ExitCode.MODEL);
    expect(r.stderr).toMatch(/^uit: .*config\.json: n_layer is 7 but/);
  });

  it('refuses a tokenizer with ids the model has no row for (a graph whose vocabulary is symbolic: config.json says)', async () => {
    const dir = copyFixture(join(tmp.dir, 'tok'));
    const folder = inspectModelFolder(dir);
    const m = await loadModel(dir, { threads: 1 });
    const [spec] = await (m.backend as unknown as { loadedSpecs(): Promise<GraphSpec[]> }).loadedSpecs();
    await m.dispose();
    const symbolic: GraphSpec = { ...spec, vocabSize: undefined };
    expect(() => checkModelConfig({ ...folder, config: { ...folder.config, vocab_size: 100 } }, symbolic, { vocabSize: 257 })).toThrow(
      /tokenizer\.json has 257 ids but the model's vocabulary has 100 \(config\.json vocab_size\): this tokenizer is not the model's/,
    );
    expect(() => checkModelConfig(folder, symbolic, { vocabSize: 257 })).not.toThrow();
  });

  it('accepts what the graph agrees with, and names it as the families spell it', async () => {
    const m = await loadModel(withConfig(join(tmp.dir, 'ok'), (c) => Object.assign(c, { head_dim: 16, num_key_value_heads: 4 })), { threads: 1 });
    await m.dispose();
    const err = await modelError(withConfig(join(tmp.dir, 'gqa'), (c) => Object.assign(c, { num_key_value_heads: 2 })));
    expect(err.message).toMatch(/num_key_value_heads is 2 but .* has 4 KV heads/);
  });
});

describe('bad model folders', () => {
  it('name the missing folder or file', async () => {
    expect((await modelError(join(tmp.dir, 'nope'))).message).toMatch(/nope does not exist/);
    writeFileSync(join(tmp.dir, 'file'), 'x');
    expect((await modelError(join(tmp.dir, 'file'))).message).toMatch(/is not a directory/);
    expect((await modelError(tmp.dir)).message).toMatch(/is not a model folder: config\.json is missing/);
  });

  it('name a missing tokenizer.json, onnx/ folder or graph', async () => {
    const noTok = copyFixture(join(tmp.dir, 'a'), { drop: ['tokenizer.json'] });
    expect((await modelError(noTok)).message).toMatch(/tokenizer\.json is missing/);
    const noOnnx = copyFixture(join(tmp.dir, 'b'), { drop: ['onnx'] });
    expect((await modelError(noOnnx)).message).toMatch(/the onnx\/ folder is missing/);
    const noGraph = copyFixture(join(tmp.dir, 'c'), { drop: ['onnx/model.onnx', 'onnx/model.fast.onnx'] });
    writeFileSync(join(noGraph, 'onnx', 'model.gen.onnx'), 'x'); // a fast graph of an older uit is not read
    expect((await modelError(noGraph)).message).toMatch(/onnx\/model\.onnx is missing \(found model\.gen\.onnx; uit reads model\.onnx and model\.fast\.onnx/);
  });

  it('report malformed JSON with the file name', async () => {
    const dir = copyFixture(tmp.dir);
    writeFileSync(join(dir, 'config.json'), '{"n_layer": 2,');
    expect((await modelError(dir)).message).toMatch(/config\.json: not valid JSON/);
  });

  it('explain a graph without past key values', async () => {
    const dir = copyFixture(tmp.dir, { drop: ['onnx/model.fast.onnx'] });
    copyFileSync(join(BAD, 'no-past.onnx'), join(dir, 'onnx', 'model.onnx'));
    const msg = (await modelError(dir)).message;
    expect(msg).toMatch(/model\.onnx: it has no past_key_values\.\{i\}\.key inputs/);
    expect(msg).toMatch(/text-generation-with-past/);
  });

  it('explain an input of the wrong type', async () => {
    const dir = copyFixture(tmp.dir, { drop: ['onnx/model.fast.onnx'] });
    copyFileSync(join(BAD, 'int32-mask.onnx'), join(dir, 'onnx', 'model.onnx'));
    expect((await modelError(dir)).message).toMatch(/input "attention_mask" is int32, expected int64/);
  });

  it.skipIf(providerReport().cuda.installed)('say what to install for --device cuda (no silent CPU fallback)', async () => {
    const msg = (await modelError(FIXTURE, { device: 'cuda' })).message;
    expect(msg).toMatch(/CUDA execution provider|only for linux\/x64/);
    if (providerReport().cuda.supportedPlatform) {
      expect(msg).toContain('--onnxruntime-node-install=cuda12');
      expect(msg).toContain('docs/runtime.md');
    }
    // `auto` falls back to the CPU and says so
    const m = await loadModel(FIXTURE, { device: 'auto', threads: 1 });
    expect(m.info.device).toBe('cpu');
    expect(m.info.deviceNote).toMatch(/using the CPU/);
    await m.dispose();
  });
});

describe('layouts', () => {
  it('an optimum export without the fast graph runs on the slow path', async () => {
    const dir = copyFixture(tmp.dir, { drop: ['onnx/model.fast.onnx'] });
    const m = await loadModel(dir, { threads: 1 });
    try {
      expect(m.info.fastGeneration).toBe(false);
      expect(m.info.fastScoring).toBe(false);
      const r = await generate(m, [{ prompt: 'abc' }], { maxNewTokens: 4, greedy: true });
      expect(r.outputs[0].samples[0].tokenIds).toHaveLength(4);
    } finally {
      await m.dispose();
    }
  });

  it('a folder with only model.fast.onnx generates and scores; full logits say what they need', async () => {
    const dir = copyFixture(tmp.dir, { drop: ['onnx/model.onnx'] });
    const m = await loadModel(dir, { threads: 1 });
    try {
      expect(m.info.fastGeneration && m.info.fastScoring).toBe(true);
      const r = await generate(m, [{ prompt: 'abc' }], { maxNewTokens: 4, greedy: true });
      expect(r.outputs[0].samples[0].tokenIds).toHaveLength(4);
      const p = await prefill(m.backend, m.tokenizer.encode('abc'));
      const [lp] = await scoreContinuations(m.backend, p, [[1, 2]]);
      expect(Array.from(lp).every(Number.isFinite)).toBe(true);
      await expect(step(m.backend, KvCache.create(m.backend.shape, 1, 0), [1, 2], 2, 'logits')).rejects.toThrow(/full logits need onnx\/model\.onnx/);
    } finally {
      await m.dispose();
    }
  });

  it('a fast graph of an older uit (no num_logprobs input) is refused with what to run', async () => {
    const dir = copyFixture(tmp.dir);
    copyFileSync(join(dir, 'onnx', 'model.onnx'), join(dir, 'onnx', 'model.fast.onnx'));
    const msg = (await modelError(dir)).message;
    expect(msg).toMatch(/model\.fast\.onnx: input "num_logprobs" is missing .*add-fast-graphs\.py/);
  });

  it('lists the external data but not parity.json', () => {
    const f = inspectModelFolder(FIXTURE);
    expect(f.files.externalData.map((p) => p.split('/').pop())).toEqual(['model.onnx_data']);
    expect(f.modelType).toBe('gptj');
  });
});

describe('model identity', () => {
  it('is a sha256 over graph, weights and tokenizer, memoised by path, size and mtime', async () => {
    const dir = copyFixture(tmp.dir);
    const memoFile = join(tmp.dir, 'memo', 'identity.json');
    const folder = inspectModelFolder(dir);
    const id = await modelIdentity(folder, { memoFile });
    expect(id).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(await modelIdentity(folder, { memoFile })).toBe(id);

    // The memo is what answers a second call: a planted value comes back until a refresh.
    const memo = JSON.parse(readFileSync(memoFile, 'utf8')) as Record<string, { sha256: string }>;
    memo[folder.dir].sha256 = 'sha256:planted';
    writeFileSync(memoFile, JSON.stringify(memo));
    expect(await modelIdentity(folder, { memoFile })).toBe('sha256:planted');
    expect(await modelIdentity(folder, { memoFile, refresh: true })).toBe(id);

    // The fast graph is a view of the same weights: it does not change the identity.
    rmSync(join(dir, 'onnx', 'model.fast.onnx'));
    expect(await modelIdentity(inspectModelFolder(dir), { memoFile })).toBe(id);

    // Another tokenizer is another model.
    appendFileSync(join(dir, 'tokenizer.json'), '\n');
    expect(await modelIdentity(inspectModelFolder(dir), { memoFile })).not.toBe(id);
  });

  it('lives under $XDG_CACHE_HOME/uit by default', async () => {
    const old = process.env.XDG_CACHE_HOME;
    process.env.XDG_CACHE_HOME = join(tmp.dir, 'xdg');
    try {
      mkdirSync(process.env.XDG_CACHE_HOME);
      const m = await loadModel(FIXTURE, { threads: 1 });
      const id = await m.identity();
      await m.dispose();
      const memo = JSON.parse(readFileSync(join(tmp.dir, 'xdg', 'uit', 'model-identity.json'), 'utf8')) as Record<string, { sha256: string }>;
      expect(memo[FIXTURE].sha256).toBe(id);
    } finally {
      if (old === undefined) delete process.env.XDG_CACHE_HOME;
      else process.env.XDG_CACHE_HOME = old;
    }
  });
});

describe('runtime failures', () => {
  it('an id outside the vocabulary is a ModelError naming the graph; a disposed model refuses work', async () => {
    const m = await loadModel(FIXTURE, { threads: 1 });
    const err = await generate(m, [{ promptIds: [1, 99999] }], { maxNewTokens: 2, greedy: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelError);
    expect((err as Error).message).toMatch(/model\.fast\.onnx: onnxruntime failed on input_ids 1x2/);
    await m.dispose();
    await expect(generate(m, [{ prompt: 'a' }], { maxNewTokens: 1, greedy: true })).rejects.toThrow(/disposed/);
  });
});
