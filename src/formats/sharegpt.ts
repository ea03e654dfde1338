// ShareGPT conversations {id, conversations: [{from, value}]}, a JSON array or JSONL.
// Only single-turn conversations are tasks: one human message (the Definition, as an Alpaca
// instruction with an empty input) and one model answer (the output), optionally after a system
// message (kept in source.extra). Multi-turn conversations are skipped and reported, because an
// instruction-tuning task has one instruction and one answer per instance.
import { basename } from 'node:path';
import type { FormatModule, LazyTask, ReadOptions, Sniff } from './api.js';
import { lazyFromTask, reportBadRecord } from './api.js';
import { isBadRecord, openRecords, type SourceRecord } from './records.js';
import { firstJsonRecordKeys } from './sniff.js';
import { inputDescription } from './names.js';

const USER = new Set(['human', 'user']);
const MODEL = new Set(['gpt', 'assistant', 'chatgpt', 'bard', 'bing', 'model']);

export const sharegpt: FormatModule = {
  name: 'sharegpt',
  description: inputDescription('sharegpt'),
  detect(s: Sniff): boolean {
    const keys = firstJsonRecordKeys(s);
    return !!keys && keys.includes('conversations');
  },
  async *read(file, opts): AsyncGenerator<LazyTask> {
    const name = basename(file).replace(/\.(jsonl?|json)$/i, '');
    for await (const r of openRecords(file)()) {
      let task: LazyTask | null;
      try {
        if (isBadRecord(r)) throw r.bad;
        task = conversationTask(r, file, name, opts);
      } catch (err) {
        reportBadRecord(opts, err);
        continue;
      }
      if (task) yield task;
    }
  },
};

/** The task of one conversation, or null when it is skipped (and reported through onSkip). */
function conversationTask(r: SourceRecord, file: string, name: string, opts: ReadOptions): LazyTask | null {
  const c = r.check;
  const o = r.value;
  const rawId = o.id ?? r.index;
  const id = typeof rawId === 'string' || typeof rawId === 'number' ? String(rawId) : String(r.index);
  const turns = c.arr(c.field(o, 'conversations', []), ['conversations']).map((t, i) => {
    const turn = c.obj(t, ['conversations', i]);
    return {
      from: c.str(c.field(turn, 'from', ['conversations', i]), ['conversations', i, 'from']),
      value: c.str(c.field(turn, 'value', ['conversations', i]), ['conversations', i, 'value']),
    };
  });
  const system = turns[0]?.from === 'system' ? turns[0].value : undefined;
  const rest = system === undefined ? turns : turns.slice(1);
  const skip = (reason: string): null => {
    opts.onSkip?.({ file, line: r.line, id, reason });
    return null;
  };
  if (rest.length > 2) return skip(`multi-turn conversation (${rest.length} messages): only single-turn conversations convert`);
  if (rest.length < 2 || !USER.has(rest[0].from) || !MODEL.has(rest[1].from)) {
    return skip(`not a user message followed by a model answer (${rest.map((t) => t.from).join(', ') || 'empty'})`);
  }
  const extra = Object.fromEntries(Object.entries(o).filter(([k]) => k !== 'conversations'));
  return lazyFromTask({
    id: `sharegpt/${name}/${id}`,
    source: { format: 'sharegpt', file, extra: { dataset: name, ...extra, ...(system !== undefined ? { system } : {}) } },
    definition: rest[0].value,
    positiveExamples: [],
    negativeExamples: [],
    instances: [{ id: `${id}-0`, input: '', outputs: [rest[1].value] }],
  });
}
