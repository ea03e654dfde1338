// The UIT scoring prompt (DESIGN.md, "Perplexity denoising"), character for character as in the
// UIT reference implementation: a candidate is judged by how well it predicts gold outputs.
import type { Example } from '../types.js';

/** The prompt's first paragraph: every scoring prefix of a candidate starts with it. */
export function definitionParagraph(definition: string): string {
  return `Definition: ${definition}\n\n`;
}

export function buildScoringPrefix(definition: string, examples: Example[], input: string): string {
  let s = definitionParagraph(definition);
  examples.slice(0, 2).forEach((ex, i) => {
    s += `Positive Examples ${i + 1}\nInput: ${ex.input}\nOutput: ${ex.output}\n\n`;
  });
  s += `Now complete the following example -\nInput: ${input}\nOutput: `;
  return s;
}
