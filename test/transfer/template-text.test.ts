import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { alignPrompts, answerChoiceTexts, flanText, labelField, placeholders, promptsourceText } from '../../src/transfer/template-text.js';

const DATA = join(__dirname, '../../../shared/data');

/** A recovered template as a regex: literal text exactly, each {slot} any text. */
function templateRegex(template: string): RegExp {
  const parts = template.split(/\{[A-Za-z_][\w]*\}/);
  return new RegExp('^' + parts.map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('[\\s\\S]*') + '$');
}

describe('P3: the template recovered by aligning prompts', () => {
  const files = readdirSync(join(DATA, 'p3_rendered')).sort();

  it('matches every prompt of every shared P3 file, and keeps text besides slots', () => {
    let withText = 0;
    for (const f of files) {
      const prompts = readFileSync(join(DATA, 'p3_rendered', f), 'utf8')
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { prompt: string }).prompt);
      const template = alignPrompts(prompts);
      const re = templateRegex(template);
      for (const p of prompts) expect(re.test(p), `${f}: ${JSON.stringify(template)}`).toBe(true);
      if (template.replace(/\{[^}]*\}/g, '').trim().length > 10) withText++;
    }
    // a few templates are nothing but fields (e.g. cosmos_qa no_prompt_text)
    expect(withText).toBeGreaterThan(files.length * 0.9);
  });

  it('names slots after a field label on their line', () => {
    expect(alignPrompts(['Title: a b\nIs it good?', 'Title: c\nIs it good?'])).toBe('Title: {title}\nIs it good?');
    expect(alignPrompts(['Q: x\nQ: y', 'Q: z\nQ: w'])).toBe('Q: {question}\nQ: {question_2}');
  });

  it('names a slot that starts its line after a label alone on the line above', () => {
    const t = alignPrompts(['Review text:\n\nGreat food.\n\nReview rating:', 'Review text:\n\nSlow service, cold soup.\n\nReview rating:']);
    expect(t).toBe('Review text:\n\n{review_text}\n\nReview rating:');
  });

  it('tells labels from instructions, and option letters from fields', () => {
    expect(['Question', 'Review score (out of 5)', 'First sentence of the article', 'Q', 'B', 'TL;DR', 'Sentence A'].map((l) => labelField(`${l}:`))).toEqual([
      'question', 'review_score', 'first_sentence_of_the_article', 'question', 'options', 'summary', 'sentence_a',
    ]);
    for (const l of ['Answer the question', 'Summarize this dialogue', "Here's a short story", 'Sum up the following dialogue', 'The answer to the question', 'Given the fact that']) {
      expect(labelField(`${l}:`), l).toBeUndefined();
    }
    expect(labelField('Answer:')).toBe('answer');
  });

  it('leaves what every value starts with to the values, after the template\'s colon or under a line ending in one', () => {
    // 20 quoref questions all start "What is the", every wiqa question "suppose"
    expect(alignPrompts(['Q: What is the name of A?', 'Q: What is the first name of B?'])).toBe('Q: {question}');
    expect(alignPrompts(['Answer this question: how big is it', 'Answer this question: how old is he'])).toBe('Answer this question: {question}');
    expect(alignPrompts(['Question:\nsuppose rain falls, what happens?\nEnd', 'Question:\nsuppose it is hot, what then?\nEnd'])).toBe('Question:\n{question}\nEnd');
    // no colon, quote or bracket: the shared words stay the template's
    expect(alignPrompts(['Generate a 5-star review.', 'Generate a 3-star review.'])).toBe('Generate a {input} review.');
  });

  it('keeps blank lines of passages inside the slot', () => {
    const t = alignPrompts(['Read:\n\np1\n\np2\n\nQuestion: a?', 'Read:\n\nonly one\n\nQuestion: b?', 'Read:\n\nx\n\ny\n\nz\n\nQuestion: c?']);
    expect(t).toBe('Read:\n\n{input}\n\nQuestion: {question}');
  });
});

describe('PromptSource and FLAN template text', () => {
  it('turns Jinja expressions into {field} placeholders and literal strings into text', () => {
    const t = promptsourceText('Is this a piece of news regarding {{"world politics, sports"}}?\n{{text}} \n||| \n{{answer_choices[label] }}');
    expect(t).toEqual({ prompt: 'Is this a piece of news regarding world politics, sports?\n{text}', target: '{answer}', fields: ['text'] });
  });

  it('uses the main branch of conditions, lists loops once, and drops filters', () => {
    const t = promptsourceText('{% set x = 1 %}{% if a %}{{ q | trim }}{% else %}none{% endif %}\nOptions: {% for c in choices.text %}- {{ c }} {% endfor %}|||{{ answers.text | choice }}');
    expect(t.prompt).toBe('{q}\nOptions: {choices.text}');
    expect(t.target).toBe('{answers.text}');
  });

  it('reads FLAN placeholders, with {options_} as {options}', () => {
    expect(flanText('{premise}\nCan we infer the following?\n{hypothesis}\n\n{options_}', '{answer}')).toEqual({
      prompt: '{premise}\nCan we infer the following?\n{hypothesis}\n\n{options}',
      target: '{answer}',
      fields: ['premise', 'hypothesis', 'options'],
    });
    expect(placeholders('{a} {b.c} {a}')).toEqual(['a', 'b.c']);
  });
});

describe('PromptSource: answer choices and dict lookups', () => {
  it('names a lookup in a dict literal by what its values share (social_i_qa)', () => {
    const t = promptsourceText('{{context}}\n\nGiven that the answer to a question is "{{{"1": answerA, "2": answerB, "3": answerC}[label]}}", what is the question?\n\n|||\n\n{{question}}');
    expect(t.prompt).toBe('{context}\n\nGiven that the answer to a question is "{answer}", what is the question?');
    expect(promptsourceText('{{ {"0": x_first, "1": y_second}[label] }} |||').prompt).toBe('{label}');
  });

  it('reads answer_choices[0] as the choice itself, when asked (the heuristic), and the choices as text or fields', () => {
    const jinja = 'Would you recommend it? {{answer_choices[0]}}, {{answer_choices[1]}} or {{answer_choices[2]}}? ||| {{answer_choices[label]}}';
    expect(answerChoiceTexts('Not at all ||| Maybe ||| Definitely')).toEqual(['Not at all', 'Maybe', 'Definitely']);
    expect(answerChoiceTexts('{{option1}} ||| {{ option2 | trim }}')).toEqual(['{option1}', '{option2}']);
    expect(promptsourceText(jinja, { choices: ['Not at all', 'Maybe', 'Definitely'] })).toMatchObject({ prompt: 'Would you recommend it? Not at all, Maybe or Definitely?', target: '{answer}' });
    expect(promptsourceText(jinja).prompt).toBe('Would you recommend it? {answer}, {answer} or {answer}?');
  });
});

describe('PromptSource: variables set from fields', () => {
  const jinja = '{% set p = premise | trim %}{% set h = hypothesis %}{{ p }}\nDoes this imply "{{ h | lower }}"? ||| {{ answer_choices[label] }}';

  it('are named by their field with resolveSets (the heuristic), as written without it (the model\'s training text)', () => {
    expect(promptsourceText(jinja, { resolveSets: true })).toEqual({ prompt: '{premise}\nDoes this imply "{hypothesis}"?', target: '{answer}', fields: ['premise', 'hypothesis'] });
    expect(promptsourceText(jinja).fields).toEqual(['p', 'h']);
  });

  it('follow chains and leave variables set from literals alone', () => {
    const t = promptsourceText('{% set a = question %}{% set b = a | upper %}{% set c = "Pick one" %}{{ c }}: {{ b }} |||', { resolveSets: true });
    expect(t.fields).toEqual(['c', 'question']);
  });
});
