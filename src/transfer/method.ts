// A transfer method turns a task read from any format into a task whose definition suits the
// target format, and says how (provenance). `uit convert --method NAME` looks methods up here:
// the heuristic registers itself below; the model pipeline registers `model` the same way.
import type { LazyTask, TargetFormat } from '../formats/api.js';
import type { Provenance } from '../types.js';
import { ExitCode, UitError } from '../errors.js';

export interface TransferContext {
  target: TargetFormat;
  /** How many Positive Examples a Ni-v2 task without any takes from its first instances. */
  examples: number;
}

export interface TransferResult {
  task: LazyTask;
  provenance: Provenance;
}

export type TransferMethod = (task: LazyTask, ctx: TransferContext) => Promise<TransferResult>;

const methods = new Map<string, TransferMethod>();

export function registerTransferMethod(name: string, method: TransferMethod): void {
  methods.set(name, method);
}

export function transferMethod(name: string): TransferMethod {
  const m = methods.get(name);
  if (!m) {
    throw new UitError(`unknown transfer method '${name}'; available: ${[...methods.keys()].join(', ')}`, ExitCode.USAGE);
  }
  return m;
}

export function transferMethodNames(): string[] {
  return [...methods.keys()];
}
