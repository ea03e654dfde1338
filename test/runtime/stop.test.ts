import { describe, expect, it } from 'vitest';
import { StopMatcher } from '../../src/runtime/index.js';

describe('StopMatcher', () => {
  it('finds the earliest stop string and cuts before it', () => {
    const m = new StopMatcher(['\n\n', 'END']);
    expect(m.cut('abc END x\n\n')).toEqual({ text: 'abc ', stopped: true });
    expect(m.cut('no stop here')).toEqual({ text: 'no stop here', stopped: false });
  });

  it('sees a stop string that spans the old and the new text', () => {
    const m = new StopMatcher(['\n\n']);
    const text = 'Definition: x\n\n';
    // the first newline came in an earlier chunk, the second one just now
    expect(m.find(text, text.length - 1)).toBe(13);
    // and nothing when only older text is searched again
    expect(new StopMatcher(['zz']).find('zz abc', 6)).toBe(-1);
    // the window is exact: a match that ends at the first new character counts, one that ends
    // just before it was seen in the earlier call; the longest stop string sets the window
    const zz = new StopMatcher(['x', 'zz']);
    expect(zz.find('abzz', 3)).toBe(2);
    expect(zz.find('abzzc', 4)).toBe(-1);
    expect(zz.find('abzzcx', 5)).toBe(5);
  });

  it('takes the earliest match whichever stop string it is, and finds none without stop strings', () => {
    const m = new StopMatcher(['long stop', 'st', 'x']);
    expect(m.find('a long stop x')).toBe(2);
    expect(m.find('xa long stop')).toBe(0);
    expect(m.cut('a long stop x')).toEqual({ text: 'a ', stopped: true });
    // the window reaches back by the longest stop string: 'long stop' ends in the new text (at 13),
    // the 'st' at 0 is older than the window
    expect(m.find('st a long stop', 13)).toBe(5);
    expect(new StopMatcher().find('anything')).toBe(-1);
    expect(new StopMatcher().empty).toBe(true);
    expect(m.empty).toBe(false);
  });

  it('ignores empty stop strings', () => {
    const m = new StopMatcher(['']);
    expect(m.empty).toBe(true);
    expect(m.find('abc')).toBe(-1);
  });
});
