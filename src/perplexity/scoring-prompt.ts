// The UIT scoring prompt (DESIGN.md, "Perplexity denoising"), character for character as in the
// UIT reference implementation: a candidate is judged by how well it predicts gold outputs.
import type { Example } from '../types.js';

export function buildScoringPrefix(definition: string, examples: Example[], input: string): string {
  let s = `Definition: ${definition}\n\n`;
  examples.slice(0, 2).forEach((ex, i) => {
    s += `Positive Examples ${i + 1}\nInput: ${ex.input}\nOutput: ${ex.output}\n\n`;
  });
  s += `Now complete the following example -\nInput: ${input}\nOutput: `;
  return s;
}
