// P3 prompts already rendered by PromptSource templates, one JSONL file per template:
// {"prompt", "completion"} (self-instruct's export, the completion ending in <|endoftext|>)
// or {"inputs", "targets"} / {"inputs_pretokenized", "targets_pretokenized"} (bigscience/P3).
// One file is one task named after the file. With no template at hand, the instruction is
// recovered by aligning the first prompts (src/formats/template-text.ts).
import { basename } from 'node:path';
import { readJsonl } from '../io/jsonl.js';
import type { Instance, Task } from '../types.js';
import { alignPrompts } from './template-text.js';
import { DEFAULT_HEAD, lazyFromStream, type FormatModule, type LazyTask, type Sniff } from './api.js';
import { Checker } from './check.js';
import { firstJsonRecordKeys } from './sniff.js';
import { inputDescription } from './names.js';

const EOT = '<|endoftext|>';
const PAIRS: Array<[string, string]> = [
  ['prompt', 'completion'],
  ['inputs_pretokenized', 'targets_pretokenized'],
  ['inputs', 'targets'],
];
/** Prompts aligned to recover the template (more adds little and costs quadratic time). */
const ALIGN_MAX = 24;

function fields(keys: string[]): [string, string] | undefined {
  return PAIRS.find(([a, b]) => keys.includes(a) && keys.includes(b));
}

async function* instances(file: string, name: string): AsyncGenerator<Instance> {
  let pair: [string, string] | undefined;
  for await (const { value, line } of readJsonl(file)) {
    const c = new Checker(file, value, undefined, line);
    const o = c.obj(value, []);
    pair ??= fields(Object.keys(o)) ?? c.fail([], 'expected {prompt, completion} or {inputs, targets}');
    const [pk, ck] = pair;
    let input = c.str(c.field(o, pk, []), [pk]);
    const target = c.field(o, ck, []);
    let outputs = Array.isArray(target) ? c.strList(target, [ck]) : [c.str(target, [ck])];
    if (pk === 'prompt') {
      // self-instruct's export puts a newline between prompt and completion and ends with EOT
      input = input.replace(/\n$/, '');
      outputs = outputs.map((s) => (s.endsWith(EOT) ? s.slice(0, -EOT.length) : s));
    }
    yield { id: `${name}-${line}`, input, outputs };
  }
}

export const p3: FormatModule = {
  name: 'p3',
  description: inputDescription('p3'),
  detect(s: Sniff): boolean {
    const keys = firstJsonRecordKeys(s);
    return !!keys && !!fields(keys) && !s.head.trimStart().startsWith('[');
  },
  async *read(file, opts): AsyncGenerator<LazyTask> {
    const name = basename(file).replace(/\.jsonl?$/i, '');
    const meta: Omit<Task, 'instances'> = {
      id: `p3/${name}`,
      source: { format: 'p3', file, extra: { dataset: name } },
      definition: '',
      positiveExamples: [],
      negativeExamples: [],
    };
    const lazy = await lazyFromStream(meta, () => instances(file, name), opts.head ?? DEFAULT_HEAD);
    const template = alignPrompts(lazy.task.instances.slice(0, ALIGN_MAX).map((i) => i.input)).trim();
    lazy.task.definition = template;
    lazy.task.source.extra.template = template;
    yield lazy;
  },
};
