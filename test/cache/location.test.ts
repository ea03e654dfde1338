import { describe, expect, it } from 'vitest';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { defaultCachePath } from '../../src/cache/index.js';

describe('defaultCachePath', () => {
  it('prefers $UIT_CACHE, then an absolute $XDG_CACHE_HOME, then ~/.cache', () => {
    expect(defaultCachePath({ UIT_CACHE: 'rel/c.sqlite', XDG_CACHE_HOME: '/xdg' })).toBe(resolve('rel/c.sqlite'));
    expect(defaultCachePath({ UIT_CACHE: '', XDG_CACHE_HOME: '/xdg' })).toBe('/xdg/uit/cache.sqlite');
    // The XDG spec says a relative XDG_CACHE_HOME is invalid and must be ignored.
    expect(defaultCachePath({ XDG_CACHE_HOME: 'relative' })).toBe(join(homedir(), '.cache', 'uit', 'cache.sqlite'));
    expect(defaultCachePath({})).toBe(join(homedir(), '.cache', 'uit', 'cache.sqlite'));
  });
});
