// The shipped seed pairs are the few-shot examples of every transfer prompt: a damaged one (an
// empty slot, a source that is not what the pipeline makes of its template) teaches every model
// call the damage.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadTemplatesYaml } from '../../src/formats/promptsource.js';
import { buildTransferPrompt } from '../../src/transfer/prompt.js';
import { loadSeeds } from '../../src/transfer/seeds.js';
import { flanText, placeholders, promptsourceText } from '../../src/transfer/template-text.js';

const DATA = join(__dirname, '../../../shared/data');
const raw = JSON.parse(readFileSync(join(__dirname, '../../src/transfer/seed-pairs.json'), 'utf8')) as Array<{ source: string; from: string }>;

/** Empty quotes or brackets, an empty or malformed {placeholder}. */
const EMPTY_SLOT = /""|''|“”|\(\s*\)|\[\s*\]|\{\s*\}|\{[^{}]*[^\w.{}\[\]][^{}]*\}/;

/** The source the pipeline makes of the template a pair names in "from". */
function sourceOf(from: string): string {
  const ps = /^PromptSource (\S+) \/ (.+)$/.exec(from);
  if (ps) {
    const t = loadTemplatesYaml(join(DATA, 'promptsource/templates', ps[1], 'templates.yaml')).templates.find((x) => x.name === ps[2]);
    if (!t) throw new Error(`no template '${ps[2]}' in ${ps[1]}`);
    return promptsourceText(t.jinja).prompt;
  }
  const flan = /^FLAN (\S+) \/ flan2021:(\d+)$/.exec(from);
  if (flan) {
    const t = JSON.parse(readFileSync(join(DATA, 'flan/flan2021_templates.json'), 'utf8'))[flan[1]][Number(flan[2])];
    return flanText(t.input, t.output).prompt;
  }
  throw new Error(`cannot read "from": ${from}`);
}

describe('the shipped seed pairs', () => {
  const seeds = loadSeeds();

  it('render into the few-shot prompt with no empty slot', () => {
    const prompt = buildTransferPrompt('Is this news about {topic}?\n{text}', 'fewshot', seeds.pairs);
    expect(seeds.pairs.length).toBeGreaterThan(0);
    for (const p of seeds.pairs) {
      expect(prompt).toContain(`Instruction: ${p.source.trim()}\nDefinition: ${p.definition.trim()}`);
      expect(p.source, p.source).not.toMatch(EMPTY_SLOT);
      expect(p.definition, p.definition).not.toMatch(EMPTY_SLOT);
      expect(placeholders(p.source).length, p.source).toBeGreaterThan(0);
    }
  });

  it('are the text the pipeline makes of the template each one names', () => {
    raw.forEach((p) => expect(p.source, p.from).toBe(sourceOf(p.from)));
  });
});
