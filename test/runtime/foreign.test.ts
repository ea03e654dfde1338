// Decoders not made by export-gptj.py (scripts/tests/foreign_decoder.py): a Llama-like graph with
// grouped-query attention (2 KV heads for 4 query heads, one external file per tensor) and a
// GPT-2-like graph without a position_ids input, in optimum-cli's layout (model.onnx next to
// config.json). The engine must run them on the slow path as exported, and on the fast path after
// scripts/add-fast-graphs.py. Needs /usr/bin/python3 with torch and onnx (skip rules as elsewhere).
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KvCache, generate, loadModel, prefill, scoreContinuations, step } from '../../src/runtime/index.js';
import { FIXTURE, maxAbsDiff, tempDir, torchAvailable } from './helpers.js';
import { replayParity } from './parity-replay.js';

const torch = torchAvailable();
const required = process.env.UIT_REQUIRE_SYSTEM_DEPS === '1';
const run = torch.ok || required;
const KINDS = ['llama', 'gpt2'] as const;

let tmp: ReturnType<typeof tempDir>;
const dirs: Record<string, string> = {};

function py(args: string[]): void {
  const r = spawnSync('/usr/bin/python3', args, { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '2' } });
  if (r.status !== 0) throw new Error(`python3 ${args.join(' ')} failed:\n${r.stderr.slice(-2000)}`);
}

describe.runIf(run)(`foreign decoders${run ? '' : ` (skipped: ${torch.reason})`}`, () => {
  beforeAll(() => {
    if (!torch.ok) throw new Error(`UIT_REQUIRE_SYSTEM_DEPS=1 but ${torch.reason}`);
    tmp = tempDir('uit-foreign-');
    for (const kind of KINDS) {
      const slow = join(tmp.dir, `${kind}-slow`);
      py(['scripts/tests/foreign_decoder.py', kind, slow]);
      // no tokenizer of their own: borrow the byte-level one (tests pass token ids)
      for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(FIXTURE, f), join(slow, f));
      const fast = join(tmp.dir, `${kind}-fast`);
      cpSync(slow, fast, { recursive: true });
      py(['scripts/add-fast-graphs.py', fast]);
      dirs[`${kind}-slow`] = slow;
      dirs[`${kind}-fast`] = fast;
    }
  }, 300_000);
  afterAll(() => tmp?.cleanup());

  for (const kind of KINDS) {
    it(`${kind}: parity.json on the exported model.onnx and on the added fast graphs`, async () => {
      await replayParity(dirs[`${kind}-slow`], false)();
      await replayParity(dirs[`${kind}-fast`], true)();
    });

    it(`${kind}: KV-cached decoding equals a full forward, generation and scoring agree across paths`, async () => {
      const slow = await loadModel(dirs[`${kind}-slow`], { threads: 1 });
      const fast = await loadModel(dirs[`${kind}-fast`], { threads: 1 });
      try {
        expect(slow.info.fastGeneration).toBe(false);
        expect(fast.info.fastGeneration).toBe(true);
        expect(fast.info.hasPositionIds).toBe(kind === 'llama');
        expect(fast.info.numKvHeads).toBe(kind === 'llama' ? 2 : 4);
        const ids = [5, 9, 33, 2, 7, 41, 12, 8, 3, 22, 11, 6];
        const full = await step(slow.backend, KvCache.create(slow.backend.shape, 1, 0), ids, ids.length, 'logits', { writeKv: false });
        const V = full.vocabSize;
        for (const m of [slow, fast]) {
          const c = KvCache.create(m.backend.shape, 1, 0);
          let out = await step(m.backend, c, ids.slice(0, 4), 4, 'last');
          for (let t = 3; t < ids.length; t++) {
            expect(maxAbsDiff(out.last!, full.logits!.subarray(t * V, (t + 1) * V))).toBeLessThan(1e-4);
            if (t + 1 < ids.length) out = await step(m.backend, c, [ids[t + 1]], 1, 'last');
          }
        }
        const reqs = [{ promptIds: [1, 2, 3], numSamples: 2 }, { promptIds: [4, 5, 6, 7, 8], numSamples: 2 }];
        const opts = { maxNewTokens: 8, temperature: 1, seed: 1, stopOnEos: false };
        const a = await generate(fast, reqs, opts);
        const b = await generate(slow, reqs, opts);
        expect(a.outputs.map((o) => o.samples.map((s) => s.tokenIds))).toEqual(b.outputs.map((o) => o.samples.map((s) => s.tokenIds)));
        // The pass's token_argmax: drafted greedy decoding (one row) gives the slow path's tokens.
        expect(fast.backend.fast.argmax).toBe(true);
        const g = { maxNewTokens: 24, greedy: true, stopOnEos: false };
        const ga = await generate(fast, [{ promptIds: [1, 2, 3, 1, 2, 3] }], g);
        const gb = await generate(slow, [{ promptIds: [1, 2, 3, 1, 2, 3] }], g);
        expect(ga.outputs).toEqual(gb.outputs);
        // Drafts need position_ids (a graph that numbers positions itself could count rewound slots).
        expect(ga.timings.draftedTokens > 0).toBe(fast.info.hasPositionIds);
        const pf = await prefill(fast.backend, ids.slice(0, 5));
        const ps = await prefill(slow.backend, ids.slice(0, 5));
        const conts = [ids.slice(5), ids.slice(5, 7)];
        const sf = await scoreContinuations(fast.backend, pf, conts, { batchSize: 2 });
        const ss = await scoreContinuations(slow.backend, ps, conts, { batchSize: 2 });
        for (let i = 0; i < conts.length; i++) expect(maxAbsDiff(sf[i], ss[i])).toBeLessThan(1e-4);
      } finally {
        await slow.dispose();
        await fast.dispose();
      }
    });
  }
});
