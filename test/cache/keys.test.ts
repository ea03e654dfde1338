import { describe, expect, it } from 'vitest';
import { canonicalJson, generationKey, scoreKey, sha256Hex } from '../../src/cache/keys.js';
import { splitParagraphs } from '../../src/cache/texts.js';

describe('canonicalJson', () => {
  it('sorts keys at every depth and drops undefined fields', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, 'x', null], c: true }, u: undefined })).toBe('{"a":{"c":true,"d":[1,"x",null]},"b":1}');
    expect(canonicalJson({ z: 0.7, a: -0 })).toBe('{"a":0,"z":0.7}');
    expect(canonicalJson([undefined, 'é\n'])).toBe('[null,"é\\n"]');
  });

  it('refuses values without one JSON spelling', () => {
    expect(() => canonicalJson({ t: NaN })).toThrow(/\$\.t is NaN/);
    expect(() => canonicalJson([Infinity])).toThrow(/\$\[0\] is Infinity/);
    expect(() => canonicalJson({ d: new Date(0) })).toThrow(/Date/);
    expect(() => canonicalJson({ n: 1n })).toThrow(/bigint/);
    // the path names the field at any depth; the message names what was found
    expect(() => canonicalJson({ a: [1, { b: () => 1 }] })).toThrow('canonicalJson: $.a[1].b is a function, not JSON');
    expect(() => canonicalJson({ x: new (class Foo {})() })).toThrow('canonicalJson: $.x is a Foo, not plain JSON');
    expect(() => canonicalJson({ x: Object.create(Object.create(null)) })).toThrow('canonicalJson: $.x is a non-plain object, not plain JSON');
    expect(() => canonicalJson(Symbol('s'))).toThrow('canonicalJson: $ is a symbol, not JSON');
  });

  it('accepts objects without a prototype (what JSON.parse-like readers build)', () => {
    const bare = Object.assign(Object.create(null), { b: 1, a: 2 });
    expect(canonicalJson({ k: bare })).toBe('{"k":{"a":2,"b":1}}');
  });
});

describe('content keys', () => {
  const gen = {
    modelId: 'a'.repeat(64),
    prompt: 'Instruction: x\nDefinition:',
    params: { temperature: 0.7, topP: 0.9, seed: 1, maxNewTokens: 64, stop: ['\n\n'] },
    sampleIndex: 0,
  };

  it('are sha256 of the canonical encoding, pinned so the recipe cannot drift silently', () => {
    const expected = sha256Hex(
      '{"kind":"generation","model":"' +
        'a'.repeat(64) +
        '","params":{"maxNewTokens":64,"seed":1,"stop":["\\n\\n"],"temperature":0.7,"topP":0.9},' +
        '"prompt":"Instruction: x\\nDefinition:","sample":0,"v":1}',
    );
    expect(generationKey(gen)).toBe(expected);
    // A literal too: caches written by earlier builds must keep matching.
    expect(generationKey(gen)).toBe('b8bb72f02bc71e10e3ed9cef5ea321d91ec9e49665f31ef940dd101dd029fc29');
  });

  it('do not depend on the order of parameters', () => {
    const reordered = { ...gen, params: { seed: 1, stop: ['\n\n'], maxNewTokens: 64, topP: 0.9, temperature: 0.7 } };
    expect(generationKey(reordered)).toBe(generationKey(gen));
  });

  it('change with every input that changes the output', () => {
    const base = generationKey(gen);
    expect(generationKey({ ...gen, sampleIndex: 1 })).not.toBe(base);
    expect(generationKey({ ...gen, prompt: gen.prompt + ' ' })).not.toBe(base);
    expect(generationKey({ ...gen, modelId: 'b'.repeat(64) })).not.toBe(base);
    // every sampling parameter, one at a time: a key that ignored one would serve another run's texts
    const variants: Record<string, unknown>[] = [
      { seed: 2 },
      { topP: 0.95 },
      { topP: undefined },
      { temperature: 0.8 },
      { stop: ['\n'] },
      { stop: [] },
      { maxNewTokens: 65 },
      { topK: 40 },
      { repetitionPenalty: 1.1 },
    ];
    const keys = variants.map((v) => generationKey({ ...gen, params: { ...gen.params, ...v } as typeof gen.params }));
    keys.forEach((k, i) => expect(k, JSON.stringify(variants[i])).not.toBe(base));
    expect(new Set(keys).size).toBe(variants.length);
    expect(() => generationKey({ ...gen, sampleIndex: -1 })).toThrow(/sampleIndex/);
    expect(() => generationKey({ ...gen, sampleIndex: 0.5 })).toThrow(/sampleIndex/);
  });

  it('score keys: params default to {}, and prefix/target boundaries matter', () => {
    const s = { scorerId: 'scorer', prefix: 'Output: ', target: 'yes' };
    // pinned as generation keys are (python: hashlib.sha256 of the canonical JSON)
    expect(scoreKey({ ...s, params: { maxContext: 2048 } })).toBe('0f5f19d58a84176af6b558b52760290b045ec9c49fc866849f9a372adba5fa56');
    expect(scoreKey(s)).toBe(scoreKey({ ...s, params: {} }));
    expect(scoreKey({ ...s, params: { maxContext: 2048 } })).not.toBe(scoreKey(s));
    // The same concatenated text split differently is a different score.
    expect(scoreKey({ ...s, prefix: 'Output: y', target: 'es' })).not.toBe(scoreKey(s));
    expect(scoreKey(s)).not.toBe(generationKey({ modelId: 'scorer', prompt: 'Output: ', params: {}, sampleIndex: 0 }));
  });
});

describe('splitParagraphs', () => {
  it('splits after blank-line runs and concatenates back to the text', () => {
    const t = 'Definition: D\n\nPositive Examples 1\nInput: a\nOutput: b\n\n\nNow complete -\nInput: x\nOutput: ';
    const parts = splitParagraphs(t);
    expect(parts).toEqual(['Definition: D\n\n', 'Positive Examples 1\nInput: a\nOutput: b\n\n\n', 'Now complete -\nInput: x\nOutput: ']);
    expect(parts.join('')).toBe(t);
    expect(splitParagraphs('')).toEqual([]);
    expect(splitParagraphs('\n\n')).toEqual(['\n\n']);
    expect(splitParagraphs('one line')).toEqual(['one line']);
  });
});
