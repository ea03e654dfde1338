// The formats by name, with their one-line descriptions: the light part of the registry, which the
// command line needs to declare its options and help (--from/--to choices, the format list) without
// loading the readers (Jinja, YAML) until a command runs. The readers and writers take their
// descriptions from here; registry.ts checks at load that both lists agree.
import type { FormatName } from '../types.js';
import type { TargetFormat } from './api.js';

/** Input formats, in detection order (the more specific shapes first). */
export const INPUT_FORMATS: readonly { name: FormatName; description: string }[] = [
  { name: 'niv2', description: 'Super-NaturalInstructions task JSON (a file, a folder of files, or JSONL of tasks)' },
  { name: 'p3', description: 'P3 prompts rendered by PromptSource, JSONL of {prompt, completion} or {inputs, targets}; one file per template' },
  { name: 'selfinstruct', description: 'self-instruct seed tasks: {id, instruction, instances: [{input, output}]} per line (or a JSON array)' },
  { name: 'sharegpt', description: 'ShareGPT {id, conversations: [{from, value}]}, single-turn only (multi-turn ones are skipped and reported)' },
  { name: 'alpaca', description: 'Alpaca-style {instruction, input, output} records, a JSON array or JSONL' },
  {
    name: 'flan',
    description: 'FLAN templates {dataset: [{input, output}]} with rows JSONL (--rows/--dataset, or DIR/templates.json + DIR/rows/<dataset>.jsonl)',
  },
  { name: 'promptsource', description: 'PromptSource templates.yaml (!Template entries) with dataset rows as JSONL (--rows, or rows.jsonl beside it)' },
  { name: 'crossfit', description: 'CrossFit TSV: input<TAB>output per line, optionally with a " [task] " prefix' },
];

/** Output formats. */
export const TARGET_FORMATS: readonly { name: TargetFormat; description: string }[] = [
  { name: 'niv2', description: 'Ni-v2 task JSON: a folder of <task>.json files, one .json file (one task), or .jsonl (a task per line)' },
  { name: 'flan', description: 'FLAN-style folder: templates.json ({task: [{input, output}]}) and rows/<task>.jsonl' },
  { name: 'alpaca', description: 'Alpaca records: a .json array (indent 4) or .jsonl (default on stdout)' },
];

export const FORMAT_NAMES: FormatName[] = INPUT_FORMATS.map((f) => f.name);
export const TARGET_NAMES: TargetFormat[] = TARGET_FORMATS.map((f) => f.name);

export function inputDescription(name: FormatName): string {
  return INPUT_FORMATS.find((f) => f.name === name)!.description;
}

export function targetDescription(name: TargetFormat): string {
  return TARGET_FORMATS.find((f) => f.name === name)!.description;
}

/** The input formats as help text: one indented line each. */
export function formatList(): string {
  return INPUT_FORMATS.map((f) => `  ${f.name.padEnd(13)} ${f.description}`).join('\n');
}
