// The heuristic transfer: no model, fields mapped directly.
//   - a task already in the target format is left as it is (method "identity");
//   - task-level instructions (Ni-v2 Definition, Alpaca / self-instruct instruction, a ShareGPT
//     request) are the definition as they are;
//   - instance-level templates (PromptSource, FLAN, P3, CrossFit) become a Definition that names
//     the fields, keeps the template's own instruction text, and lists the answer choices:
//     "In this task, you are given a premise and a hypothesis. Can we conclude that the
//      hypothesis is true? Answer with one of: "yes", "no"."
//   - for a Ni-v2 target, a task without Positive Examples takes its first instances (2 by
//     default) as Positive Examples, removing them from Instances and always leaving at least one.
import type { LazyTask } from '../formats/api.js';
import { dropFirstInstances, lazyFromTask } from '../formats/api.js';
import type { Example, Provenance, Task } from '../types.js';
import { registerTransferMethod, type TransferContext, type TransferResult } from './method.js';
import { flanText, placeholders, promptsourceText, type TemplateText } from './template-text.js';

/** `answers.text` -> "answers text", `question_stem` -> "question stem". */
export function fieldWords(field: string): string {
  const words = field
    .replace(/\[.*?\]/g, '')
    .split(/[._\s]+/)
    .filter((w) => w && !/^\d+$/.test(w));
  return words.join(' ').toLowerCase() || 'input';
}

function withArticle(words: string): string {
  if (/s$/.test(words) && !/(ss|is|us|ys)$/.test(words)) return words; // plural: "concepts"
  return (/^[aeiou]/.test(words) ? 'an ' : 'a ') + words;
}

function listPhrase(items: string[]): string {
  if (items.length <= 1) return items.join('');
  return `${items.slice(0, -1).join(', ')} and ${items[items.length - 1]}`;
}

const NOT_INPUT_FIELDS = new Set(['options', 'options_', 'answer', 'answer_choices', 'options_str']);

/** The instruction sentences of a template: lines that say more than a field label. */
function instructionText(prompt: string): string {
  const kept: string[] = [];
  for (const line of prompt.split('\n')) {
    const residue = line.replace(/\{[^{}]*\}/g, '').trim();
    if (!/[A-Za-z]/.test(residue)) continue; // only fields and punctuation
    const bare = residue.replace(/[\s"'()?.!]+$/, '');
    if (/^[-\w ]{1,30}:$/.test(bare) || /^[-*•]?\s*[A-Z]?[.):]?$/.test(bare)) continue; // a label ("Question:")
    // a field at the very start or end of a line is where the data goes, not part of a sentence
    const sentence = line
      .trim()
      .replace(/^(["'(]?\{[^{}]*\}["')]?[\s,.:;]*)+/, '')
      .replace(/([\s,:;-]*["'(]?\{[^{}]*\}["')]?)+\s*$/, '');
    kept.push(sentence.replace(/\{([^{}]*)\}/g, (_m, f: string) => (NOT_INPUT_FIELDS.has(f) ? 'the options' : `the ${fieldWords(f)}`)));
  }
  let text = kept.join(' ').replace(/\s+/g, ' ').trim();
  if (text && !/[.?!]$/.test(text)) text = text.replace(/[:;,]$/, '') + '.';
  return text;
}

function quoteList(choices: string[]): string {
  return choices.map((c) => JSON.stringify(c)).join(', ');
}

/** The Definition for an instance-level template. */
export function describeTemplate(text: TemplateText, choices: string[] | null | 'varies', taskName?: string): string {
  const fields = text.fields.filter((f) => !NOT_INPUT_FIELDS.has(f));
  const uniqueWords = [...new Set(fields.map(fieldWords))];
  const sentences: string[] = [];
  if (uniqueWords.length) sentences.push(`In this task, you are given ${listPhrase(uniqueWords.map(withArticle))}.`);
  const instruction = instructionText(text.prompt);
  if (instruction) sentences.push(instruction);
  else if (taskName) sentences.push(`Produce the output of the "${taskName}" task.`);
  if (Array.isArray(choices) && choices.length) sentences.push(`Answer with one of: ${quoteList(choices)}.`);
  else if (choices === 'varies') sentences.push('Answer with one of the given options.');
  else {
    const target = placeholders(text.target)[0];
    if (!instruction && target) sentences.push(`Write the ${fieldWords(target)}.`);
  }
  return sentences.join(' ') || 'Write the output for the given input.';
}

/** Choices shared by the head instances, 'varies' when they differ, null when there are none. */
function sharedChoices(lists: Array<unknown>): string[] | null | 'varies' {
  const valid = lists.filter((l): l is string[] => Array.isArray(l) && l.every((x) => typeof x === 'string'));
  if (valid.length === 0) return null;
  const first = JSON.stringify(valid[0]);
  return valid.every((l) => JSON.stringify(l) === first) ? valid[0] : 'varies';
}

/** The heuristic Definition of any task (instance-level templates described, others as they are). */
export function heuristicDefinition(task: Task): { definition: string; from: string } {
  const extra = task.source.extra;
  switch (task.source.format) {
    case 'promptsource': {
      const tpl = extra.template as { jinja: string } | undefined;
      const text = tpl ? promptsourceText(tpl.jinja, { resolveSets: true }) : { prompt: task.definition, target: '', fields: placeholders(task.definition) };
      const choices = sharedChoices(task.instances.map((i) => i.extra?.answer_choices));
      return { definition: describeTemplate(text, choices), from: 'template' };
    }
    case 'flan': {
      const tpl = extra.template as { input: string; output: string } | undefined;
      const text = tpl ? flanText(tpl.input, tpl.output) : { prompt: task.definition, target: '', fields: placeholders(task.definition) };
      const usesOptions = /\{options_\}/.test(tpl?.input ?? '');
      const choices = usesOptions ? sharedChoices(task.instances.map((i) => (i.extra?.row as Record<string, unknown> | undefined)?.options)) : null;
      return { definition: describeTemplate(text, usesOptions && choices === null ? 'varies' : choices), from: 'template' };
    }
    case 'p3':
      return { definition: describeTemplate({ prompt: task.definition, target: '', fields: placeholders(task.definition) }, null), from: 'aligned prompts' };
    case 'crossfit': {
      // the layout names the fields; CrossFit has no instruction text besides the task name
      const layout = task.definition.replace(/^\[[^\]]*\]\s*/, '');
      return {
        definition: describeTemplate({ prompt: '', target: '', fields: placeholders(layout) }, null, String(extra.dataset ?? '')),
        from: 'field layout',
      };
    }
    default:
      return { definition: task.definition, from: 'instruction' };
  }
}

export async function heuristicTransfer(t: LazyTask, ctx: TransferContext): Promise<TransferResult> {
  const task = t.task;
  const provenance: Provenance = {
    source: { file: task.source.file, format: task.source.format, id: task.id },
    method: 'identity',
    target: ctx.target,
  };
  if (task.source.format === ctx.target) return { task: t, provenance };
  const { definition, from } = heuristicDefinition(task);
  provenance.method = 'heuristic';
  provenance.definitionFrom = from;
  if (definition !== task.definition) provenance.sourceInstruction = task.definition;
  let out: LazyTask = t.complete ? lazyFromTask({ ...task, definition }) : { ...t, task: { ...task, definition } };
  if (ctx.target === 'niv2' && task.positiveExamples.length === 0 && ctx.examples > 0) {
    const n = Math.max(0, Math.min(ctx.examples, task.instances.length - 1));
    if (n > 0) {
      const examples: Example[] = task.instances.slice(0, n).map((i) => ({ input: i.input, output: i.outputs[0] ?? '' }));
      out = dropFirstInstances(out, n, { ...out.task, positiveExamples: examples });
      provenance.positiveExamplesFromInstances = n;
    }
  }
  return { task: out, provenance };
}

registerTransferMethod('heuristic', heuristicTransfer);
