// The UIT scoring prompt (DESIGN.md, "Perplexity denoising"), as in the UIT reference
// implementation (main_ppl_annotation.py, evaluate_a_json): a candidate is judged by how well it
// predicts gold outputs. The reference formats its Definition LIST into the prompt, so its prompt
// holds Python's repr of it (`Definition: ['...']`); the `reference` mode does the same, the `uit`
// mode writes the bare text, as the written task's readers will see it. Everything else is the
// reference's, character for character, in both modes.
import { pyReprList } from '../io/pyrepr.js';
import type { Example } from '../types.js';
import type { ScoringMode } from './defaults.js';

/** The prompt's first paragraph: every scoring prefix of a candidate starts with it. */
export function definitionParagraph(definition: string, scoring: ScoringMode = 'uit'): string {
  // a candidate D is what the reference reads from a candidate file whose Definition is [D]
  return `Definition: ${scoring === 'reference' ? pyReprList([definition]) : definition}\n\n`;
}

export function buildScoringPrefix(definition: string, examples: Example[], input: string, scoring: ScoringMode = 'uit'): string {
  let s = definitionParagraph(definition, scoring);
  examples.slice(0, 2).forEach((ex, i) => {
    s += `Positive Examples ${i + 1}\nInput: ${ex.input}\nOutput: ${ex.output}\n\n`;
  });
  s += `Now complete the following example -\nInput: ${input}\nOutput: `;
  return s;
}

/**
 * The gold target of an instance: its first output. An empty one is scored null (left out) in the
 * `uit` mode, and as the string "null" in the `reference` mode, as the reference does.
 */
export function scoringTarget(outputs: readonly string[], scoring: ScoringMode = 'uit'): string {
  const first = outputs[0] ?? '';
  return scoring === 'reference' && first === '' ? 'null' : first;
}
