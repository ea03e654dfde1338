// Ni-v2 wants task-level Positive Examples; a task from another format has none, so it lends some of
// its instances. One rule for the heuristic and the model methods, so their outputs differ only in
// the Definition. A Ni-v2 example holds exactly one output, so only instances with exactly one
// output are lent: one with several (a Ni-v2 task that went through FLAN or Alpaca and back) or
// none stays an instance, whole, rather than lose outputs.
import { dropInstancesAt, type LazyTask } from '../formats/api.js';
import type { Example } from '../types.js';

export interface Borrowed {
  task: LazyTask;
  /** Instances that became Positive Examples. */
  borrowed: number;
}

/**
 * Up to `examples` of the instances already read (`task.instances`, the head of a streamed task)
 * that have exactly one output become Positive Examples, the first such in instance order, always
 * leaving one instance. Nothing changes when the task has Positive Examples or `examples` is 0.
 */
export function borrowExamples(t: LazyTask, examples: number): Borrowed {
  const task = t.task;
  if (task.positiveExamples.length > 0 || examples <= 0) return { task: t, borrowed: 0 };
  const n = Math.max(0, Math.min(examples, task.instances.length - 1));
  const picked = task.instances.flatMap((inst, i) => (inst.outputs.length === 1 ? [i] : [])).slice(0, n);
  if (picked.length === 0) return { task: t, borrowed: 0 };
  const positives: Example[] = picked.map((i) => ({ input: task.instances[i].input, output: task.instances[i].outputs[0] }));
  return { task: dropInstancesAt(t, new Set(picked), { ...task, positiveExamples: positives }), borrowed: picked.length };
}
