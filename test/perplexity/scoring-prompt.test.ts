// The scoring prompt is the UIT reference's, byte for byte (DESIGN.md, "Perplexity denoising"):
// a changed space or newline changes every score and every cache key.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildScoringPrefix, definitionParagraph, scoringTarget } from '../../src/perplexity/scoring-prompt.js';

const EXAMPLES = [
  { input: 'France', output: 'Euro' },
  { input: 'Japan', output: 'Yen' },
  { input: 'Peru', output: 'Sol' },
];

/** The prompt template in DESIGN.md: the first code block after its scoring-prompt heading. */
function designTemplate(): string {
  const design = readFileSync(resolve('../shared/DESIGN.md'), 'utf8');
  const section = design.slice(design.indexOf('## Perplexity denoising: the scoring prompt'));
  const m = /```\n([\s\S]*?)\n```/.exec(section);
  if (!m) throw new Error('DESIGN.md: no code block after "Perplexity denoising: the scoring prompt"');
  return m[1];
}

describe('buildScoringPrefix', () => {
  it("is DESIGN.md's template with the first two examples filled in, byte for byte", () => {
    const D = 'Write the currency of the country.';
    const x = 'Kenya';
    const expected =
      'Definition: Write the currency of the country.\n\n' +
      'Positive Examples 1\nInput: France\nOutput: Euro\n\n' +
      'Positive Examples 2\nInput: Japan\nOutput: Yen\n\n' +
      'Now complete the following example -\nInput: Kenya\nOutput: ';
    // the third example is never written
    expect(buildScoringPrefix(D, EXAMPLES, x)).toBe(expected);
    expect(buildScoringPrefix(D, EXAMPLES.slice(0, 2), x)).toBe(expected);
    const fromDesign = designTemplate()
      .replace('{D}', D)
      .replace('{input_1}', 'France')
      .replace('{output_1}', 'Euro')
      .replace('{input_2}', 'Japan')
      .replace('{output_2}', 'Yen')
      .replace('{x}', x);
    expect(fromDesign).toBe(expected);
  });

  it('writes only the examples there are', () => {
    expect(buildScoringPrefix('D', EXAMPLES.slice(0, 1), 'x')).toBe(
      'Definition: D\n\nPositive Examples 1\nInput: France\nOutput: Euro\n\nNow complete the following example -\nInput: x\nOutput: ',
    );
    expect(buildScoringPrefix('D', [], 'x')).toBe('Definition: D\n\nNow complete the following example -\nInput: x\nOutput: ');
  });

  it("reference mode writes the Definition as Python's repr of a one-item list, the rest unchanged", () => {
    expect(definitionParagraph('Say it.')).toBe('Definition: Say it.\n\n');
    expect(definitionParagraph('Say it.', 'uit')).toBe('Definition: Say it.\n\n');
    expect(definitionParagraph('Say it.', 'reference')).toBe("Definition: ['Say it.']\n\n");
    expect(definitionParagraph("Say 'it'.", 'reference')).toBe(`Definition: ["Say 'it'."]\n\n`);
    expect(buildScoringPrefix('D', EXAMPLES, 'x', 'reference')).toBe(buildScoringPrefix('D', EXAMPLES, 'x').replace('Definition: D', "Definition: ['D']"));
  });
});

describe('scoringTarget', () => {
  it('is the first gold output; an empty one is "" in uit mode and the string "null" in reference mode', () => {
    expect(scoringTarget(['Euro', 'EUR'])).toBe('Euro');
    expect(scoringTarget(['Euro', 'EUR'], 'reference')).toBe('Euro');
    expect(scoringTarget(['', 'EUR'])).toBe('');
    expect(scoringTarget(['', 'EUR'], 'reference')).toBe('null');
    expect(scoringTarget([])).toBe('');
    expect(scoringTarget([], 'uit')).toBe('');
    expect(scoringTarget([], 'reference')).toBe('null');
    // only an empty output becomes "null": a literal "null" or a space stays what it is
    expect(scoringTarget([' '], 'reference')).toBe(' ');
  });
});
