// The format-transfer prompt, in its two styles. The embedded model (models/uit-tiny) is trained
// on exactly this text, so changing it means retraining (scripts/train-tiny-gptj.py reads the
// same constants from src/transfer/prompt-format.json).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface SeedPair {
  /** The task's instruction in its source format (template text with {field} placeholders). */
  source: string;
  /** The same task's Ni-v2 definition. */
  definition: string;
}

export type PromptStyle = 'fewshot' | 'pair';

interface PromptFormat {
  header: string;
  sourceLabel: string;
  definitionLabel: string;
  separator: string;
}

const formatPath = fileURLToPath(new URL('../../src/transfer/prompt-format.json', import.meta.url));
export const PROMPT_FORMAT: PromptFormat = JSON.parse(readFileSync(formatPath, 'utf8'));

/** The model's answer ends at a blank line (the separator between few-shot blocks) or at EOS. */
export const TRANSFER_STOP = ['\n\n'];

function block(source: string, definition?: string): string {
  const f = PROMPT_FORMAT;
  const head = `${f.sourceLabel} ${source.trim()}\n${f.definitionLabel}`;
  return definition === undefined ? head : `${head} ${definition.trim()}`;
}

/**
 * `pair`: the bare pair a fine-tuned transfer model takes, "Instruction: ...\nDefinition:".
 * `fewshot`: a header, then seed pairs separated by blank lines, then the pair for the new task.
 */
export function buildTransferPrompt(source: string, style: PromptStyle, seeds: SeedPair[] = []): string {
  if (style === 'pair') return block(source);
  const f = PROMPT_FORMAT;
  const shots = seeds.map((s) => block(s.source, s.definition));
  return [f.header, ...shots, block(source)].join(f.separator);
}

/**
 * The source instruction of a transfer prompt of either style (the inverse of
 * buildTransferPrompt for its last block), or undefined when `prompt` is not one. The last block
 * starts at the last "Instruction: " that begins the prompt or follows the separator, so a source
 * instruction that itself holds "\n\nInstruction: " is read from there on.
 */
export function transferPromptSource(prompt: string): string | undefined {
  const f = PROMPT_FORMAT;
  const end = `\n${f.definitionLabel}`;
  if (!prompt.endsWith(end)) return undefined;
  const body = prompt.slice(0, prompt.length - end.length);
  const head = `${f.sourceLabel} `;
  const at = body.lastIndexOf(f.separator + head);
  const start = at >= 0 ? at + f.separator.length : body.startsWith(head) ? 0 : -1;
  if (start < 0) return undefined;
  const source = body.slice(start + head.length);
  return source.trim() === '' ? undefined : source;
}
