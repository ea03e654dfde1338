// The heuristic transfer: no model, fields mapped directly.
//   - a task already in the target format is left as it is (method "identity");
//   - task-level instructions (Ni-v2 Definition, Alpaca / self-instruct instruction, a ShareGPT
//     request) are the definition as they are;
//   - instance-level templates (PromptSource, FLAN, P3, CrossFit) become a Definition that names
//     the fields, keeps the template's own instruction text, and states the answer choices once:
//     "In this task, you are given a premise and a hypothesis. Can we conclude that the
//      hypothesis is true? Answer with one of: "yes", "no"."
//     A template that stops mid-sentence is a text to complete ("Complete the text "So I would
//     rate it ..." with one of: ..."), a prompt ending on a bare label says what to write ("Write
//     the rating."). scripts/definition-quality.mjs counts the Definitions that still read badly.
//   - for a Ni-v2 target, a task without Positive Examples takes its first instances (2 by
//     default) as Positive Examples, removing them from Instances and always leaving at least one.
import type { LazyTask } from '../formats/api.js';
import { lazyFromTask } from '../formats/api.js';
import { borrowExamples } from './borrow-examples.js';
import type { Example, Provenance, Task } from '../types.js';
import { registerTransferMethod, type TransferContext, type TransferResult } from './method.js';
import { answerChoiceTexts, flanText, INSTRUCTION_VERBS, labelField, placeholders, promptsourceText, type TemplateText } from './template-text.js';

/** `answers.text` -> "answers text", `question_stem` -> "question stem", `headline_a` -> "headline A". */
export function fieldWords(field: string): string {
  const words = field
    .replace(/\[.*?\]/g, '')
    .split(/[._\s]+/)
    .filter((w) => w && !/^\d+$/.test(w))
    .map((w, i) => (i > 0 && w.length === 1 ? w.toUpperCase() : w.toLowerCase()));
  return words.join(' ') || 'input';
}

function withArticle(words: string): string {
  if (/s$/.test(words) && !/(ss|is|us|ys)$/.test(words)) return words; // plural: "concepts"
  return (/^[aeiou]/.test(words) ? 'an ' : 'a ') + words;
}

function listPhrase(items: string[]): string {
  if (items.length <= 1) return items.join('');
  return `${items.slice(0, -1).join(', ')} and ${items[items.length - 1]}`;
}

/** Placeholders that stand for the answer options rather than an input. */
const OPTION_FIELDS = new Set(['options', 'options_', 'answer_choices', 'options_str']);
const NOT_INPUT_FIELDS = new Set([...OPTION_FIELDS, 'answer']);

/**
 * Words a sentence cannot end on: a template that stops there is a text for the answer to
 * complete. A copula can end a clause a wh-word opens ("how similar they are").
 */
const DANGLING = new Set(
  'a an the of to in on at by for with from as and or but that would will shall should can could may might must my your our their his her its than into onto'.split(' '),
);
const COPULAS = new Set('is are was were be been being am'.split(' '));
const DANGLING_END = /\b(give|gives|rate|rates)\s+(it|this|them)$/i;

function endsDangling(text: string): boolean {
  const body = text.replace(/[\s:;,.]+$/, '');
  const lastWord = (/(\S+)$/.exec(body)?.[1] ?? '').toLowerCase().replace(/[^a-z]/g, '');
  const clause = body.split(/[.?!;:]\s/).pop() ?? body;
  return DANGLING.has(lastWord) || DANGLING_END.test(body) || (COPULAS.has(lastWord) && !/\b(how|what|which|who|whom|whose|where|when|why|whether)\b/i.test(clause));
}

/** How a placeholder reads inside a sentence. */
function fieldPhrase(f: string): string {
  if (OPTION_FIELDS.has(f)) return 'the options';
  return `the ${fieldWords(f)}`;
}

/**
 * The placeholders of a sentence in words: "the question"; "[star]" where the field is part of
 * a word or follows an article ("a {star}-star review" -> "a [star]-star review"); "the package
 * name" for "package {package_name}".
 */
function readFields(sentence: string): string {
  return sentence
    .replace(/(\{[^{}]*\})\1+/g, '$1') // {{ x[0] | upper }}{{ x[1:] }}
    .replace(/(\b[Aa]n?\s+|\b[Tt]he\s+)?(\w)?\{([^{}]*)\}(?=(\w|-\w)?)/g, (m, article: string | undefined, before: string | undefined, f: string, glued: string | undefined) => {
      if (OPTION_FIELDS.has(f)) return `${article ?? ''}${before ?? ''}the options`;
      if (article || before || glued) return `${article ?? ''}${before ?? ''}[${fieldWords(f)}]`;
      return m.replace(`{${f}}`, fieldPhrase(f));
    })
    .replace(/\b(\w+) the (\w+)\b/g, (m, word: string, first: string) => (word.toLowerCase() === first ? `the ${first}` : m));
}

/** A template line without its placeholders, for telling labels from sentences. */
const residueOf = (line: string): string => line.replace(/\{[^{}]*\}/g, '').trim();

/** A line that is only a field label ("Question:", "Review text:"), whatever fields follow it. */
function isLabelLine(line: string): boolean {
  const residue = residueOf(line);
  const bare = residue.replace(/[\s"'()?.!]+$/, '');
  if (/^[-*•]?\s*[A-Z]?[.):]?$/.test(bare)) return true; // a bullet or an option letter
  return /:$/.test(bare) && labelField(bare) !== undefined;
}

interface Instruction {
  /** The template's own sentences, fields read as "the <field>". */
  text: string;
  /** A label the prompt ends on with nothing after it ("Review rating:", "Title:"): what to write. */
  outputLabel: string | null;
  /** The text stops mid-sentence ("So I would like to give it"): the answer completes it. */
  completion: boolean;
}

/** The instruction sentences of a template: lines that say more than a field label. */
function instructionText(prompt: string): Instruction {
  // "Given the fact that:\n\n{para}": a line ending in a colon reads on into the fields under it
  const introduces = (l: string | undefined): boolean => l !== undefined && /:\s*$/.test(l) && !/\{[^{}]*\}/.test(l);
  const lines: string[] = [];
  for (const line of prompt.split('\n')) {
    const prev = lines[lines.length - 1];
    if (introduces(prev) && line.trim() === '') continue; // blank lines between the colon and its fields
    if (introduces(prev) && residueOf(line) === '') lines[lines.length - 1] = `${prev.trimEnd()} ${line.trim()}`;
    else lines.push(line);
  }
  const last = lines.map((l) => l.trim()).filter(Boolean).pop() ?? '';
  let outputLabel: string | null = null;
  if (isLabelLine(last) && !/\{[^{}]*\}/.test(last)) {
    const label = residueOf(last).replace(/[\s"'()?.!]+$/, '');
    const f = /^A:$/.test(label) ? 'answer' : labelField(label); // "Q: ...\nA:"
    if (f && f !== 'options') outputLabel = fieldWords(f);
  }
  const kept: string[] = [];
  for (const line of lines) {
    const residue = residueOf(line);
    if (!/[A-Za-z]/.test(residue)) continue; // only fields and punctuation
    if (isLabelLine(line)) continue;
    const trimmed = line.trim();
    // "Summarize: {document}": an instruction verb labelling the field it applies to
    const verbOnly = /^([A-Za-z]+):\s*\{([^{}]*)\}/.exec(trimmed);
    if (verbOnly && INSTRUCTION_VERBS.has(verbOnly[1].toLowerCase())) {
      kept.push(`${verbOnly[1]} ${fieldPhrase(verbOnly[2])}.`);
      continue;
    }
    // a field at the very start or end of a line is where the data goes, not part of a sentence,
    // unless the sentence needs it ("What is the question to: {answer}?")
    const head = trimmed.replace(/^(["'(]?\{[^{}]*\}["')]?[\s,.:;]*)+/, '');
    const stripped = head.replace(/([\s,:;-]*["'(]?\{[^{}]*\}["')]?)+\s*$/, '');
    const sentence = stripped !== head && endsDangling(stripped) ? head.replace(/:\s*(["'(]?\{)/, ' $1') : stripped;
    kept.push(readFields(sentence));
  }
  // a line that stops without punctuation before a new sentence ends there, or for an
  // introductory phrase ("Given this review: {review}"), leads into it with a comma
  for (let i = 0; i + 1 < kept.length; i++) {
    const line = kept[i].trim();
    const next = kept[i + 1].trim();
    if (!/^[A-Z]/.test(next) || /[.?!:;,]$/.test(line) || endsDangling(line)) continue;
    if (/^(Given|Based on|According to|After|Using|For)\b/.test(line) && !/^I\b/.test(next)) {
      kept[i] = `${line},`;
      kept[i + 1] = next.charAt(0).toLowerCase() + next.slice(1);
    } else kept[i] = `${line}.`;
  }
  let text = kept
    .join(' ')
    // what an expression uit cannot read left empty ("the topic \"\"?")
    .replace(/\s*(""|''|“”|\(\s*\)|\[\s*\])/g, '')
    .replace(/\s+/g, ' ')
    // one mention where a template lists the options, or several fields alike, one by one:
    // "the options, the options or the options", "the input sentence the input sentence ..."
    .replace(/(["']?)\b(the [a-z][a-z ]*?)\b\1((?:\s*,\s*(?:or\s+|and\s+)?|\s+(?:or|and)\s+|\s+)\1\2\b\1)+/g, (m, q: string, phrase: string) => {
      if (phrase === 'the options') return q + phrase + q;
      // quoted fields alike stay apart ("the simple sentence" and "the simple sentence")
      return q ? m : phrase.endsWith('s') ? phrase : `${phrase}s`;
    })
    .trim();
  const body = text.replace(/[\s:;,.]+$/, '');
  const completion = body !== '' && !/[?!]$/.test(body) && endsDangling(body);
  if (completion) text = body;
  else if (text && !/[.?!]$/.test(text)) text = text.replace(/[:;,]$/, '') + '.';
  return { text, outputLabel, completion };
}

function quoteList(choices: string[]): string {
  return choices.map((c) => JSON.stringify(c)).join(', ');
}

/** Every choice is already written in the text (as a whole word or phrase, any case). */
function mentionsAll(text: string, choices: string[]): boolean {
  const esc = (c: string) => c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return choices.every((c) => new RegExp(`(?<![\\p{L}\\p{N}])${esc(c)}(?![\\p{L}\\p{N}])`, 'iu').test(text));
}

/** The Definition for an instance-level template. */
export function describeTemplate(text: TemplateText, choices: string[] | null | 'varies', taskName?: string): string {
  const fields = text.fields.filter((f) => !NOT_INPUT_FIELDS.has(f));
  const uniqueWords = [...new Set(fields.map(fieldWords))];
  const sentences: string[] = [];
  if (uniqueWords.length) sentences.push(`In this task, you are given ${listPhrase(uniqueWords.map(withArticle))}.`);
  const { text: instruction, outputLabel, completion } = instructionText(text.prompt);
  const options = Array.isArray(choices) && choices.length > 0 ? [...new Set(choices)] : null;
  // the options once: not again when the template's sentences already list them all
  const optionsShown = options !== null && mentionsAll(instruction, options);
  if (completion) {
    const withOptions = options && !optionsShown ? ` with one of: ${quoteList(options)}` : '';
    sentences.push(`Complete the text "${instruction} ..."${withOptions}.`);
  } else if (instruction) sentences.push(instruction);
  else if (taskName) sentences.push(`Produce the output of the "${taskName}" task.`);
  const target = placeholders(text.target)[0];
  const what = outputLabel ?? (target && !OPTION_FIELDS.has(target) ? fieldWords(target) : null);
  if (options && !optionsShown && !completion) {
    sentences.push(outputLabel ? `Write the ${outputLabel}, one of: ${quoteList(options)}.` : `Answer with one of: ${quoteList(options)}.`);
  } else if (choices === 'varies') sentences.push('Answer with one of the given options.');
  else if (!options && what && (outputLabel || !instruction || instruction.split(/\s+/).length < 4)) sentences.push(`Write the ${what}.`);
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
      const tpl = extra.template as { jinja: string; answer_choices?: string | null } | undefined;
      const parts = typeof tpl?.answer_choices === 'string' ? answerChoiceTexts(tpl.answer_choices) : undefined;
      const text = tpl
        ? promptsourceText(tpl.jinja, { resolveSets: true, choices: parts })
        : { prompt: task.definition, target: '', fields: placeholders(task.definition) };
      // fixed choices are the template's own; choices made from fields differ from row to row,
      // and are "the given options" only where the prompt shows them
      const fixed = parts?.every((c) => c !== '' && placeholders(c).length === 0) ? parts! : null;
      const shown = text.fields.some((f) => OPTION_FIELDS.has(f)) || !!parts?.some((c) => placeholders(c).some((f) => text.fields.includes(f)));
      const choices = fixed ?? (parts && shown ? (sharedChoices(task.instances.map((i) => i.extra?.answer_choices)) ?? 'varies') : null);
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
  if (ctx.target === 'niv2') {
    const lent = borrowExamples(out, ctx.examples);
    out = lent.task;
    if (lent.borrowed > 0) provenance.positiveExamplesFromInstances = lent.borrowed;
  }
  return { task: out, provenance };
}

registerTransferMethod('heuristic', heuristicTransfer);
