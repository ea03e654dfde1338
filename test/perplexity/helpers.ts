// Shared pieces of the scoring tests: the committed tiny GPT-J fixture, temp folders, and an
// independent reference: one full forward of onnx/model.onnx through onnxruntime-node directly
// (not through src/runtime), with log-softmax and gather done here in float64.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import ort from 'onnxruntime-node';

export const FIXTURE = resolve('test/fixtures/tiny-gptj');
/** Real Ni-v2 task files (read-only, relative to the repo as the working agreement asks). */
export const NIV2_TASKS = resolve('../shared/data/niv2/tasks');

export function tempDir(prefix = 'uit-perplexity-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A copy of the fixture whose config.json says the model has `nPositions` positions. */
export function fixtureWithContext(into: string, nPositions: number): string {
  const dst = join(into, `tiny-gptj-ctx${nPositions}`);
  cpSync(FIXTURE, dst, { recursive: true });
  const cfgFile = join(dst, 'config.json');
  const cfg = JSON.parse(readFileSync(cfgFile, 'utf8')) as Record<string, unknown>;
  writeFileSync(cfgFile, JSON.stringify({ ...cfg, n_positions: nPositions }, null, 2));
  return dst;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Full-forward reference on a model folder's onnx/model.onnx. */
export class Reference {
  private constructor(
    private readonly session: ort.InferenceSession,
    private readonly layers: number,
    private readonly heads: number,
    private readonly headDim: number,
  ) {}

  static async open(dir: string): Promise<Reference> {
    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { n_layer: number; n_head: number; n_embd: number };
    const session = await ort.InferenceSession.create(join(dir, 'onnx', 'model.onnx'), { intraOpNumThreads: 1 });
    return new Reference(session, cfg.n_layer, cfg.n_head, cfg.n_embd / cfg.n_head);
  }

  /** log p(ids[t] | ids[<t]) for t = 1 .. n-1, from all logits of one forward (no KV cache). */
  async logprobs(ids: readonly number[]): Promise<number[]> {
    const n = ids.length;
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from(ids.map(BigInt)), [1, n]),
      attention_mask: new ort.Tensor('int64', new BigInt64Array(n).fill(1n), [1, n]),
      position_ids: new ort.Tensor('int64', BigInt64Array.from(ids.map((_, i) => BigInt(i))), [1, n]),
    };
    for (let l = 0; l < this.layers; l++) {
      for (const kv of ['key', 'value']) {
        feeds[`past_key_values.${l}.${kv}`] = new ort.Tensor('float32', new Float32Array(0), [1, this.heads, 0, this.headDim]);
      }
    }
    const out = await this.session.run(feeds, ['logits']);
    const logits = out.logits.data as Float32Array;
    const vocab = logits.length / n;
    const res: number[] = [];
    for (let t = 0; t < n - 1; t++) {
      const row = logits.subarray(t * vocab, (t + 1) * vocab);
      let max = -Infinity;
      for (const x of row) max = Math.max(max, x);
      let sum = 0;
      for (const x of row) sum += Math.exp(x - max);
      res.push(row[ids[t + 1]] - max - Math.log(sum));
    }
    return res;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
