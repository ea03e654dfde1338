// Alpaca-style records {instruction, input, output} in a JSON array or JSONL.
// Each record carries its own instruction, so a task is a run of consecutive records with the
// same instruction (usually one record); its Definition is that instruction. Unknown record
// fields are kept in the instance's `extra` and written back by the Alpaca writer.
// An instance with other than exactly one output is written with `output` = the first (or "")
// and `outputs` = all of them; a record's `outputs` that agrees with its `output` is read back.
import { basename } from 'node:path';
import { AtomicWriter } from '../io/atomic.js';
import { dumps } from '../io/pyjson.js';
import { ExitCode, UitError } from '../errors.js';
import type { Instance, Task } from '../types.js';
import { DEFAULT_HEAD, groupConsecutive, type FormatModule, type FormatWriter, type OpenOptions, type Sniff, type TaskWriter } from './api.js';
import { outputLayout, provenancePathFor, provenanceSink } from './niv2.js';
import { isBadRecord, openRecords, type RecordItem } from './records.js';
import { firstJsonRecordKeys } from './sniff.js';
import { inputDescription, targetDescription } from './names.js';

const KNOWN = ['instruction', 'input', 'output'];

function stem(file: string): string {
  return basename(file).replace(/\.(jsonl?|json)$/i, '');
}

/** A record's `outputs` when it is uit's list of every output: strings, led by `output` ("" for none). */
function outputsField(o: Record<string, unknown>, output: string): string[] | undefined {
  const list = o.outputs;
  if (!Array.isArray(list) || !list.every((x) => typeof x === 'string')) return undefined;
  return (list.length === 0 ? output === '' : list[0] === output) ? (list as string[]) : undefined;
}

function parse(r: RecordItem): { instruction: string; input: string; outputs: string[]; extra?: Record<string, unknown> } {
  if (isBadRecord(r)) throw r.bad;
  const c = r.check;
  const o = r.value;
  const instruction = c.str(c.field(o, 'instruction', []), ['instruction']);
  const input = o.input === undefined || o.input === null ? '' : c.str(o.input, ['input']);
  const output = c.str(c.field(o, 'output', []), ['output']);
  const outputs = outputsField(o, output);
  const unknown = Object.entries(o).filter(([k]) => !KNOWN.includes(k) && !(k === 'outputs' && outputs));
  return { instruction, input, outputs: outputs ?? [output], ...(unknown.length ? { extra: Object.fromEntries(unknown) } : {}) };
}

export const alpaca: FormatModule = {
  name: 'alpaca',
  description: inputDescription('alpaca'),
  detect(s: Sniff): boolean {
    const keys = firstJsonRecordKeys(s);
    return !!keys && keys.includes('instruction') && keys.includes('output') && !keys.includes('instances');
  },
  read(file, opts) {
    const name = stem(file);
    const open = openRecords(file);
    // the grouping pass validates every record (its key is the parsed instruction)
    return groupConsecutive(
      open,
      (r) => parse(r).instruction,
      (first, index): Omit<Task, 'instances'> => ({
        id: `alpaca/${name}/${index}`,
        source: { format: 'alpaca', file, extra: { dataset: name } },
        definition: parse(first).instruction,
        positiveExamples: [],
        negativeExamples: [],
      }),
      (r, index): Instance => {
        const p = parse(r);
        return { id: `${name}-${index}`, input: p.input, outputs: p.outputs, ...(p.extra ? { extra: p.extra } : {}) };
      },
      opts.head ?? DEFAULT_HEAD,
      opts,
    );
  },
};

// ---------------------------------------------------------------------------------------------

function* records(task: Task, instances: Iterable<Instance>): Generator<Record<string, unknown>> {
  for (const inst of instances) yield alpacaRecord(task, inst);
}

export function alpacaRecord(task: Task, inst: Instance): Record<string, unknown> {
  const rec: Record<string, unknown> = { instruction: task.definition, input: inst.input, output: inst.outputs[0] ?? '' };
  // every output, and none as none (`output` alone would read back as [""])
  if (inst.outputs.length !== 1) rec.outputs = inst.outputs;
  if (task.source.format === 'alpaca' && inst.extra) Object.assign(rec, inst.extra);
  return rec;
}

export const alpacaWriter: FormatWriter = {
  name: 'alpaca',
  description: targetDescription('alpaca'),
  open(opts: OpenOptions): TaskWriter {
    const layout = outputLayout(opts.out);
    if (layout === 'dir') {
      throw new UitError(`--to alpaca writes a .json or .jsonl file, not a folder: ${opts.out}`, ExitCode.USAGE);
    }
    const out = opts.out ?? '-';
    const w = layout === 'stdout' ? null : new AtomicWriter(out);
    const prov = provenanceSink(layout, out);
    const stdout = opts.stdout ?? process.stdout;
    let count = 0;
    if (w && layout === 'json') w.write('[');
    return {
      provenancePath: w ? provenancePathFor(out, layout) : undefined,
      provenance: prov,
      async write(t) {
        const first = count + 1;
        for await (const inst of t.instances()) {
          for (const rec of records(t.task, [inst])) {
            if (layout === 'json') w!.write((count ? ',' : '') + '\n    ' + dumps(rec, { indent: 4 }, 1));
            else if (w) w.write(dumps(rec) + '\n');
            else stdout.write(dumps(rec) + '\n');
            count++;
          }
        }
        return `${out}#${first}`;
      },
      commit() {
        if (!w) return;
        if (layout === 'json') w.write(count ? '\n]\n' : ']\n');
        w.commit();
        prov?.commit();
      },
      abort: () => {
        w?.abort();
        prov?.abort();
      },
    };
  },
};
