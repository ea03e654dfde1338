// Types for scripts/check-parity.mjs (imported by test/export/*.test.ts).
import type { Tensor } from 'onnxruntime-node';

export interface DiffReport {
  maxAbsDiff: number;
  compared: number;
  failures: string[];
}

export interface ParityReport {
  dtype: 'fp32' | 'fp16';
  tolerance: { atol: number; rtol: number };
  /** Each graph against the PyTorch reference in parity.json. */
  graphs: { main: DiffReport; gen: DiffReport; score: DiffReport };
  /** The fast graphs against model.onnx on the same inputs. */
  consistency: { logits_last: DiffReport; token_logprobs: DiffReport; new_key_values: DiffReport };
  ok: boolean;
}

export function checkParity(modelDir: string, options?: { threads?: number }): Promise<ParityReport>;
export function concatKv(past: Tensor, fresh: Tensor): Tensor;
export function tailKv(t: Tensor, n: number): Tensor;
