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
  /** Each graph (model.onnx, model.fast.onnx) against the PyTorch reference in parity.json. */
  graphs: { main: DiffReport; fast: DiffReport };
  /** The fast graph against model.onnx on the same inputs (and with num_logprobs 0, 1 and s-1). */
  consistency: { logits_last: DiffReport; token_logprobs: DiffReport; new_key_values: DiffReport; probs_last?: DiffReport; token_sampled?: DiffReport };
  /**
   * A quantized folder: its quantization, and what parity.json's reference is: "dequantized"
   * (PyTorch with the same quantized weights: `graphs` checked within `tolerance`) or "unquantized"
   * (`graphs` report the distance to the unquantized model and never fail).
   */
  quantization?: { scheme: 'int4' | 'int8'; op: string; reference: 'dequantized' | 'unquantized'; [k: string]: unknown };
  /** parity.json's shared-prefix steps were replayed; the fast graph too when it takes shared_key_values. */
  shared?: { fastGraph: boolean; steps: number };
  ok: boolean;
}

/**
 * Whether `token` is what a draw at u x total picks, give or take `eps` x total (the fast graph's
 * token_sampled has float32 block sums): its probability is nonzero and its interval holds the target.
 */
export function drawnNear(probs: Float32Array, u: number, token: number, eps?: number): boolean;
export function checkParity(modelDir: string, options?: { threads?: number }): Promise<ParityReport>;
export function concatKv(past: Tensor, fresh: Tensor): Tensor;
export function tailKv(t: Tensor, n: number): Tensor;
