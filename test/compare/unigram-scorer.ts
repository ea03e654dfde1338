// A real, if crude, DefinitionScorer for tests that must not depend on the ONNX scorer: the
// perplexity of a task's gold outputs under an add-one-smoothed unigram model estimated from the
// definition. A definition that shares words with the outputs predicts them better, so the
// numbers mean something and can be checked by hand; nothing here imitates the runtime.
import type { DefinitionScorer } from '../../src/compare/report.js';
import { rougeTokens } from '../../src/compare/metrics.js';
import type { Task } from '../../src/types.js';

export function unigramPerplexity(definition: string, targets: string[]): number | null {
  const counts = new Map<string, number>();
  const defTokens = rougeTokens(definition);
  for (const t of defTokens) counts.set(t, (counts.get(t) ?? 0) + 1);
  const targetTokens = targets.flatMap(rougeTokens);
  if (targetTokens.length === 0) return null;
  const vocab = new Set([...defTokens, ...targetTokens]).size + 1; // +1: unseen words share one slot
  let ce = 0;
  for (const t of targetTokens) ce -= Math.log(((counts.get(t) ?? 0) + 1) / (defTokens.length + vocab));
  return Math.exp(ce / targetTokens.length);
}

export function goldOutputs(task: Task, m: number): string[] {
  return task.instances.slice(0, m).flatMap((i) => i.outputs.slice(0, 1));
}

export const unigramScorer = (m = 32): DefinitionScorer => async (tasks, defs) =>
  tasks.map((task, i) => defs[i].map((d) => unigramPerplexity(d, goldOutputs(task, m))));
