// Self-instruct seed tasks (and the user-oriented evaluation set): one task per record,
// {id, name?, instruction, instances: [{input, output}], is_classification?, ...}, as JSONL or a
// JSON array. The instruction is the Definition; other fields are kept in source.extra.
import { basename } from 'node:path';
import type { Instance } from '../types.js';
import type { FormatModule, LazyTask, Sniff } from './api.js';
import { lazyFromTask, reportBadRecord } from './api.js';
import { isBadRecord, openRecords, type SourceRecord } from './records.js';
import { firstJsonRecordKeys } from './sniff.js';
import { inputDescription } from './names.js';

export const selfinstruct: FormatModule = {
  name: 'selfinstruct',
  description: inputDescription('selfinstruct'),
  detect(s: Sniff): boolean {
    const keys = firstJsonRecordKeys(s);
    return !!keys && keys.includes('instruction') && keys.includes('instances');
  },
  async *read(file, opts): AsyncGenerator<LazyTask> {
    const name = basename(file).replace(/\.(jsonl?|json)$/i, '');
    for await (const r of openRecords(file)()) {
      let task: LazyTask;
      try {
        if (isBadRecord(r)) throw r.bad;
        task = recordTask(r, file, name);
      } catch (err) {
        reportBadRecord(opts, err);
        continue;
      }
      yield task;
    }
  },
};

function recordTask(r: SourceRecord, file: string, name: string): LazyTask {
  const c = r.check;
  const o = r.value;
  const definition = c.str(c.field(o, 'instruction', []), ['instruction']);
  const rawId = o.id ?? `${name}-${r.index}`;
  const id = typeof rawId === 'string' || typeof rawId === 'number' ? String(rawId) : c.fail(['id'], 'expected a string');
  const instances: Instance[] = c.arr(c.field(o, 'instances', []), ['instances']).map((v, i) => {
    const inst = c.obj(v, ['instances', i]);
    const input = inst.input === undefined || inst.input === null ? '' : c.str(inst.input, ['instances', i, 'input']);
    return { id: `${id}-${i}`, input, outputs: [c.str(c.field(inst, 'output', ['instances', i]), ['instances', i, 'output'])] };
  });
  const extra = Object.fromEntries(Object.entries(o).filter(([k]) => k !== 'instruction' && k !== 'instances'));
  return lazyFromTask({
    id: `selfinstruct/${id}`,
    source: { format: 'selfinstruct', file, extra: { dataset: name, ...extra } },
    definition,
    positiveExamples: [],
    negativeExamples: [],
    instances,
  });
}
