import { describe, expect, it } from 'vitest';
import { lazyFromStream, lazyFromTask, materialize } from '../../src/formats/api.js';
import { borrowExamples } from '../../src/transfer/borrow-examples.js';
import type { Instance, Task } from '../../src/types.js';

const inst = (id: string, outputs: string[]): Instance => ({ id, input: `in ${id}`, outputs });
const task = (instances: Instance[]): Task => ({
  id: 't',
  source: { format: 'flan', file: 't.json', extra: {} },
  definition: 'd',
  positiveExamples: [],
  negativeExamples: [],
  instances,
});

describe('borrowExamples', () => {
  it('lends the first one-output instances; several outputs or none stay instances, whole', async () => {
    const t = task([inst('a', ['x', 'y']), inst('b', ['1']), inst('c', []), inst('d', ['2']), inst('e', ['3'])]);
    const { task: out, borrowed } = borrowExamples(lazyFromTask(t), 2);
    expect(borrowed).toBe(2);
    expect(out.task.positiveExamples).toEqual([
      { input: 'in b', output: '1' },
      { input: 'in d', output: '2' },
    ]);
    expect((await materialize(out)).instances.map((i) => [i.id, i.outputs])).toEqual([
      ['a', ['x', 'y']],
      ['c', []],
      ['e', ['3']],
    ]);
  });

  it('lends none when no instance has exactly one output, and always leaves one instance', async () => {
    expect(borrowExamples(lazyFromTask(task([inst('a', ['x', 'y']), inst('b', [])])), 2).borrowed).toBe(0);
    const two = borrowExamples(lazyFromTask(task([inst('a', ['1']), inst('b', ['2'])])), 5);
    expect(two.borrowed).toBe(1);
    expect((await materialize(two.task)).instances.map((i) => i.id)).toEqual(['b']);
  });

  it('drops the lent instances from a streamed task by position', async () => {
    const all = [inst('a', ['x', 'y']), inst('b', ['1']), inst('c', ['2']), inst('d', ['3'])];
    const { instances: _, ...meta } = task([]);
    const lazy = await lazyFromStream(meta, async function* () {
      yield* all;
    }, 2);
    expect(lazy.complete).toBe(false);
    const { task: out } = borrowExamples(lazy, 2);
    expect(out.task.positiveExamples.map((e) => e.output)).toEqual(['1']);
    const ids: string[] = [];
    for await (const i of out.instances()) ids.push(i.id);
    expect(ids).toEqual(['a', 'c', 'd']);
  });
});
