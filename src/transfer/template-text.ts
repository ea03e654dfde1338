// The "instruction" of an instance-level task is what its template says around the fields.
// This module turns each kind of template into that readable text, with the fields as {field}
// placeholders: the source instruction a transfer model rewrites, and the material of the
// heuristic Definition.
//   - PromptSource: Jinja2 source -> text, `{{ premise }}` -> {premise}, `{{ answer_choices[label] }}` -> {answer}
//   - FLAN: already `{premise}` placeholders; `{options_}` is the answer-options block
//   - P3 (rendered prompts only): the text shared by every prompt, found by aligning instances
import { parse, tokenize } from '@huggingface/jinja';

export interface TemplateText {
  /** The prompt side with {field} placeholders, whitespace as in the template. */
  prompt: string;
  /** The target side, e.g. "{answer}". */
  target: string;
  /** Placeholder names in the prompt, in order of first appearance. */
  fields: string[];
}

interface Node {
  type: string;
  [k: string]: unknown;
}

const PLACEHOLDER = /\{([A-Za-z_][\w.]*(?:\[[^\]]*\])?)\}/g;

/** Variables a template sets from a field (`{% set p = premise | trim %}`): p -> premise. */
type Aliases = Map<string, string>;

interface WalkContext {
  /** Resolve variables set from fields (resolveSets). */
  aliases?: Aliases;
  /** The text of each answer choice (answerChoiceTexts), for `answer_choices[0]`. */
  choices?: string[];
}

/** The name a Jinja expression gets as a placeholder (filters and method calls are presentation). */
function placeholderName(n: Node, aliases?: Aliases): string | null {
  const name = (m: Node) => placeholderName(m, aliases);
  switch (n.type) {
    case 'StringLiteral':
      return null; // printed literally
    case 'Identifier':
      return aliases?.get(n.value as string) ?? (n.value as string);
    case 'MemberExpression': {
      const objName = name(n.object as Node);
      const prop = n.property as Node;
      if (objName === 'answer_choices') return 'answer';
      if (!n.computed) return objName ? `${objName}.${prop.value as string}` : (prop.value as string);
      if ((n.object as Node).type === 'ObjectLiteral') {
        // `{"1": answerA, "2": answerB, "3": answerC}[label]`: one of the values, named by what
        // their names share ("answer"), else by the key
        const values = [...((n.object as Node).value as Map<Node, Node>).values()].map(name);
        const shared = values.every((v) => v) ? commonPrefix(values as string[]).replace(/[\W_]+$/, '') : '';
        return shared || name(prop);
      }
      return objName;
    }
    case 'FilterExpression':
      return name(n.operand as Node);
    case 'CallExpression': {
      const callee = n.callee as Node;
      if (callee.type === 'MemberExpression') return name(callee.object as Node);
      const args = n.args as Node[];
      return args.length ? name(args[0]) : null;
    }
    case 'Ternary':
      return name(n.trueExpr as Node) ?? name(n.falseExpr as Node);
    case 'BinaryExpression':
      return name(n.left as Node) ?? name(n.right as Node);
    case 'SelectExpression':
      return name(n.lhs as Node);
    default: {
      const first = firstIdentifier(n);
      return first === null ? null : (aliases?.get(first) ?? first);
    }
  }
}

function firstIdentifier(n: unknown): string | null {
  if (typeof n !== 'object' || n === null) return null;
  const node = n as Node;
  if (node.type === 'Identifier') return node.value as string;
  for (const [k, v] of Object.entries(node)) {
    if (k === 'type') continue;
    const items = Array.isArray(v) ? v : [v];
    for (const item of items) {
      const r = firstIdentifier(item);
      if (r) return r;
    }
  }
  return null;
}

function literalText(n: Node): string | null {
  if (n.type === 'StringLiteral') return n.value as string;
  if (n.type === 'FilterExpression') return literalText(n.operand as Node);
  return null;
}

/** `answer_choices[i]` with a literal i: that choice's text, when the choices are known. */
function choiceText(n: Node, choices: string[] | undefined): string | null {
  if (!choices) return null;
  const e = n.type === 'FilterExpression' ? (n.operand as Node) : n;
  if (e.type !== 'MemberExpression' || !e.computed) return null;
  const obj = e.object as Node;
  const prop = e.property as Node;
  if (obj.type !== 'Identifier' || obj.value !== 'answer_choices' || prop.type !== 'IntegerLiteral') return null;
  // one part stands for all of them when the choices are a joined list ({{ options | join("|||") }})
  return choices.at(prop.value as number) ?? (choices.length === 1 ? choices[0] : null);
}

function walk(body: Node[], out: string[], inLoop: Set<string>, ctx: WalkContext): void {
  const aliases = ctx.aliases;
  for (const n of body) {
    switch (n.type) {
      case 'Set': {
        const assignee = n.assignee as Node;
        const value = n.value as Node | null;
        if (aliases && assignee.type === 'Identifier' && value) {
          const source = placeholderName(value, aliases);
          if (source) aliases.set(assignee.value as string, source);
        }
        break;
      }
      case 'Comment':
      case 'Macro':
      case 'Break':
      case 'Continue':
        break;
      case 'If':
        // the main branch stands for the template's usual text
        walk(n.body as Node[], out, inLoop, ctx);
        break;
      case 'For': {
        const it = placeholderName(n.iterable as Node, aliases);
        if (it && !inLoop.has(it)) {
          out.push(`{${it}}`);
          inLoop.add(it);
        }
        break;
      }
      default: {
        const lit = literalText(n) ?? choiceText(n, ctx.choices);
        if (lit !== null) {
          out.push(lit);
          break;
        }
        const name = placeholderName(n, aliases);
        if (name) out.push(`{${name}}`);
      }
    }
  }
}

export function placeholders(text: string): string[] {
  const seen: string[] = [];
  for (const m of text.matchAll(PLACEHOLDER)) if (!seen.includes(m[1])) seen.push(m[1]);
  return seen;
}

/**
 * A PromptSource Jinja template as readable text. Throws on a syntax error. With
 * `resolveSets`, a variable the template sets from a field is named by that field ({premise},
 * not {p}); with `choices` (answerChoiceTexts of the template's answer_choices),
 * `answer_choices[0]` is the first choice's text. Both are off by default, because the embedded
 * model was trained on the text without them.
 */
export function promptsourceText(jinja: string, opts: { resolveSets?: boolean; choices?: string[] } = {}): TemplateText {
  const out = templateParts(jinja, { aliases: opts.resolveSets ? new Map() : undefined, choices: opts.choices });
  const [prompt = '', ...rest] = out.join('').split('|||');
  const p = prompt.trim();
  return { prompt: p, target: rest.join('|||').trim(), fields: placeholders(p) };
}

function templateParts(jinja: string, ctx: WalkContext): string[] {
  const program = parse(tokenize(jinja, { lstrip_blocks: false, trim_blocks: false })) as unknown as Node;
  const out: string[] = [];
  walk(program.body as Node[], out, new Set(), ctx);
  return out;
}

/**
 * The text of each answer choice of a PromptSource `answer_choices` template: fixed text
 * ("Not at all ||| No ||| Yes" -> three words) or a field ("{{option1}} ||| {{option2}}" ->
 * {option1}, {option2}). Throws on a syntax error.
 */
export function answerChoiceTexts(answerChoices: string): string[] {
  return templateParts(answerChoices, { aliases: new Map() })
    .join('')
    .split('|||')
    .map((c) => c.trim());
}

/** A FLAN template ({input, output} with {field} placeholders) as readable text. */
export function flanText(input: string, output: string): TemplateText {
  // FLAN writes the options block as {options_}; {options_str} is the inline variant
  const prompt = input.replace(/\{options_\}/g, '{options}').replace(/\{options_str\}/g, '{options}');
  return { prompt, target: output, fields: placeholders(prompt) };
}

// ---------------------------------------------------------------------------------------------
// P3: recover the template from rendered prompts.

/** Longest common subsequence of two line lists (index pairs). */
function lcsPairs(a: string[], b: string[]): Array<[number, number]> {
  const n = a.length;
  const m = b.length;
  const dp: Uint32Array[] = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      dp[i][j] = a[i] === b[j] ? dp[i + 1][j + 1] + 1 : Math.max(dp[i + 1][j], dp[i][j + 1]);
    }
  }
  const pairs: Array<[number, number]> = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (a[i] === b[j]) {
      pairs.push([i, j]);
      i++;
      j++;
    } else if (dp[i + 1][j] >= dp[i][j + 1]) i++;
    else j++;
  }
  return pairs;
}

function commonPrefix(xs: string[]): string {
  let p = xs[0] ?? '';
  for (const x of xs) while (!x.startsWith(p)) p = p.slice(0, -1);
  return p;
}

function commonSuffix(xs: string[]): string {
  let s = xs[0] ?? '';
  for (const x of xs) while (!x.endsWith(s)) s = s.slice(1);
  return s;
}

/** Cuts a shared prefix back to a word boundary, so a slot does not start mid-word. */
function snapPrefix(p: string, values: string[]): string {
  if (values.every((v) => v.length === p.length)) return p;
  const m = /^[\s\S]*[\s:"'(\[]/.exec(p);
  return m ? m[0] : '';
}

function snapSuffix(s: string, values: string[]): string {
  if (values.every((v) => v.length === s.length)) return s;
  // sentence punctuation right after a slot usually belongs to the value ("... end.")
  const m = /[\s:"')\]][\s\S]*$/.exec(s);
  return m ? m[0] : '';
}

const SLOT_MARK = '\u0000SLOT\u0000';

/**
 * First words of instructions ("Answer the question:", "Given the fact that:"): a line like
 * that is an instruction, not a field label, even when it ends with a colon.
 */
export const INSTRUCTION_VERBS = new Set(
  (
    'answer summarize summarise read write generate given paraphrase extract choose select pick classify determine decide identify ' +
    'find complete translate rewrite describe explain tell list name use consider predict rate guess create make produce give ' +
    'provide fill based according using please what which who whom whose how why when where is are does do did can could would ' +
    'should will was were if in from after before here heres let combine sum'
  ).split(' '),
);

/**
 * The field a label names ("Review text:" -> review_text, "Q:" -> question), or undefined when
 * the text is not a bare label: an instruction ("Answer the question:"), more than five words,
 * a phrase with "a" or pointing at text ("Here's a short story:", "Sum up the following dialogue:",
 * "The answer to the question:"). Single-letter labels ("A:", "B:") are answer options, "TL;DR:"
 * asks for a summary.
 */
export function labelField(text: string): string | undefined {
  const m = /^\s*(?:[-*•]\s*)?([A-Za-z][\w'-]*(?:;\w+)?(?: [\w'()-]+){0,4})\s*:\s*["'“(]?$/.exec(text);
  if (!m) return undefined;
  if (/^tl;dr$/i.test(m[1])) return 'summary';
  const words = m[1].replace(/\([^)]*\)/g, ' ').trim().split(/\s+/);
  const first = words[0].toLowerCase().replace(/'/g, '');
  if (words.some((w) => /^(a|an|this|these|following|below|above)$/.test(w.toLowerCase()) && w !== 'A') || /^(the|that|those|my|your|because)$/.test(first)) {
    return undefined;
  }
  if (words.length === 1 && first === 'q') return 'question';
  if (words.length === 1 && /^[a-e]$/.test(first)) return 'options';
  if (INSTRUCTION_VERBS.has(first) && (words.length > 1 || first !== 'answer')) return undefined;
  return words.join('_').toLowerCase().replace(/\W/g, '');
}

/** The noun an instruction introduces a field with: "Answer the question: " -> question, "Given this app review:" -> review. */
function introducedNoun(text: string): string | undefined {
  const noun = /\b(?:the|this|these|a|an|following)\s+(?:[A-Za-z]+\s+){0,2}?([A-Za-z]{2,})\s*:\s*["'“(]?$/i.exec(text)?.[1].toLowerCase();
  return noun && !/^(that|it|this|these|those|is|are|of|to|below|above|following)$/.test(noun) ? noun : undefined;
}

/**
 * One variable region across prompts: literal if identical, else prefix + slot + suffix. What
 * every value starts with after the template's last colon, quote or bracket is the values' own
 * ("What is the" of every quoref question, "suppose" of every wiqa one): it goes into the slot,
 * and so does all of a shared start when the region is a whole line under a line ending in a colon.
 */
function regionText(values: string[], underLabel = false): string {
  if (values.every((v) => v === values[0])) return values[0];
  let pre = snapPrefix(commonPrefix(values), values);
  const boundary = /^[\s\S]*[:"“'(\[]\s*/.exec(pre);
  if (boundary) pre = boundary[0];
  else if (underLabel) pre = /^\s*/.exec(pre)![0];
  const rest = values.map((v) => v.slice(pre.length));
  const suf = snapSuffix(commonSuffix(rest), rest);
  return pre + SLOT_MARK + suf;
}

/** Lines that start with a short field label ("Question: ...") align by their label. */
const LABELLED = /^(\s*[A-Za-z][\w ]{0,30}:\s)/;
function lineKey(line: string): string {
  const m = LABELLED.exec(line);
  return m ? `${m[1]}\u0001` : line;
}

/**
 * The template shared by rendered prompts. Non-blank lines common to every prompt (in order)
 * are kept, where lines match when equal or when they start with the same field label
 * ("Question: a?" and "Question: b?"); between them each prompt has a region of lines (blank
 * lines stay inside regions, since passages have paragraph breaks of their own). A kept line or
 * a region is literal where every prompt agrees; otherwise what every prompt starts and ends it
 * with is literal and the rest is a slot. Slots are named by the label just before them on
 * their line ("Question: " -> {question}) or alone on the line above, else {input}, {input_2}, ...
 */
export function alignPrompts(prompts: string[]): string {
  if (prompts.length < 2) return '{input}';
  const lines = prompts.map((p) => p.split('\n'));
  const nonBlank = lines.map((l) => l.map((x, i) => [lineKey(x), i] as const).filter(([, i]) => l[i].trim() !== ''));
  let common = nonBlank[0].map(([k]) => k);
  for (const l of nonBlank.slice(1)) {
    const keys = l.map(([k]) => k);
    common = lcsPairs(common, keys).map(([i]) => common[i]);
  }
  // each prompt: the line index of every common line
  const anchors = nonBlank.map((l) => lcsPairs(common, l.map(([k]) => k)).map(([, j]) => l[j][1]));
  const pieces: string[] = [];
  for (let r = 0; r <= common.length; r++) {
    const regions = lines.map((l, p) => {
      const from = r === 0 ? 0 : anchors[p][r - 1] + 1;
      const to = r === common.length ? l.length : anchors[p][r];
      return l.slice(from, to);
    });
    let slotFirst = false;
    if (regions.some((reg) => reg.length > 0)) {
      if (regions.some((reg) => reg.length === 0)) {
        // lines only some prompts have (a passage with line breaks): the slot of the line
        // before absorbs them, or a slot at its end (at the start: before the next line)
        if (pieces.length === 0) slotFirst = true;
        else if (!pieces[pieces.length - 1].endsWith(SLOT_MARK)) pieces[pieces.length - 1] += SLOT_MARK;
      } else {
        const under = pieces.length > 0 && /:\s*$/.test(pieces[pieces.length - 1].split('\n').pop() ?? '');
        pieces.push(regionText(regions.map((reg) => reg.join('\n')), under));
      }
    }
    if (r < common.length) {
      const line = regionText(lines.map((l, p) => l[anchors[p][r]]));
      pieces.push(slotFirst && !line.startsWith(SLOT_MARK) ? SLOT_MARK + line : line);
    }
  }
  const text = pieces.join('\n');
  const used = new Map<string, number>();
  let out = '';
  let last = 0;
  for (let at = text.indexOf(SLOT_MARK); at !== -1; at = text.indexOf(SLOT_MARK, last)) {
    const lines = text.slice(0, at).split('\n');
    const before = lines.pop() ?? '';
    // a field label that starts the line ("Question: ", "Review title: "), or for a slot that
    // starts its line, a label alone on the line above ("Review text:\n\n...")
    let label = labelField(before) ?? introducedNoun(before);
    if (label === undefined && /^\s*["'“(]?$/.test(before)) {
      const above = lines.reverse().find((l) => l.trim() !== '');
      if (above !== undefined) label = labelField(above) ?? introducedNoun(above);
    }
    let name = (label ?? 'input').replace(/[\s-]+/g, '_');
    const n = (used.get(name) ?? 0) + 1;
    used.set(name, n);
    if (n > 1) name = `${name}_${n}`;
    out += text.slice(last, at) + `{${name}}`;
    last = at + SLOT_MARK.length;
  }
  return out + text.slice(last);
}
