// Replays a model folder's onnx/parity.json (recorded from the PyTorch reference by
// scripts/export-gptj.py) through the engine's KvCache + step, on the fast or the slow path.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { KvCache, loadModel, logSoftmaxAt, step } from '../../src/runtime/index.js';

interface ParityStep {
  input_ids: number[][];
  attention_mask: number[][];
  position_ids: number[][];
  past: 'none' | 'previous';
  expected: {
    logits_last_head: number[][];
    argmax_last: number[];
    logsumexp_last: number[];
    token_logprobs: (number | null)[][];
  };
}
interface Parity {
  tolerance: { atol: number; rtol: number };
  steps: ParityStep[];
}

export function replayParity(dir: string, fast: boolean) {
  return async () => {
    const nested = join(dir, 'onnx', 'parity.json');
    const parity = JSON.parse(readFileSync(existsSync(nested) ? nested : join(dir, 'parity.json'), 'utf8')) as Parity;
    const model = await loadModel(dir, { fastGraphs: fast, threads: 1 });
    try {
      expect(model.info.fastGeneration).toBe(fast);
      const { atol, rtol } = parity.tolerance;
      const close = (got: number, want: number, what: string) => {
        if (!(Math.abs(got - want) <= atol + rtol * Math.abs(want))) throw new Error(`${what}: got ${got}, want ${want}`);
      };
      const rows = parity.steps[0].input_ids.length;
      const cache = KvCache.create(model.backend.shape, rows, 0);
      let compared = 0;
      for (const [k, st] of parity.steps.entries()) {
        const s = st.input_ids[0].length;
        const pastLen = st.attention_mask[0].length - s;
        expect(pastLen).toBe(cache.used);
        const valid = Uint8Array.from(st.attention_mask.flatMap((m) => m.slice(pastLen)));
        // The engine's own mask and positions equal the recorded ones.
        // (the fast path's cache may have free slots between `used` and `capacity`: leave them out)
        const mask = Array.from(cache.attentionMask(s, valid)).map(Number);
        const width = cache.capacity + s;
        const used = (r: number) => [...mask.slice(r * width, r * width + cache.used), ...mask.slice(r * width + cache.capacity, (r + 1) * width)];
        expect(Array.from({ length: rows }, (_, r) => used(r)).flat()).toEqual(st.attention_mask.flat());
        expect(Array.from(cache.positionIds(s, valid)).map(Number)).toEqual(st.position_ids.flat());
        const ids = st.input_ids.flat();
        const scored = await step(model.backend, cache, ids, s, 'logprobs', { newValid: valid, writeKv: false });
        const out = await step(model.backend, cache, ids, s, 'last', { newValid: valid });
        const V = out.vocabSize;
        for (let b = 0; b < rows; b++) {
          const last = out.last!.subarray(b * V, (b + 1) * V);
          st.expected.logits_last_head[b].forEach((want, j) => close(last[j], want, `step ${k} row ${b} logit ${j}`));
          let max = -Infinity;
          for (const v of last) max = Math.max(max, v);
          // logsumexp = logit - log_softmax(logit), for any entry
          close(last[0] - logSoftmaxAt(last, 0, V, 0), st.expected.logsumexp_last[b], `step ${k} row ${b} logsumexp`);
          close(last[st.expected.argmax_last[b]], max, `step ${k} row ${b} argmax`);
          st.expected.token_logprobs[b].forEach((want, t) => {
            if (want === null) return;
            close(scored.logprobs![b * (s - 1) + t], want, `step ${k} row ${b} token_logprob ${t}`);
            compared++;
          });
        }
      }
      expect(compared).toBeGreaterThan(0);
    } finally {
      await model.dispose();
    }
  };
}
