// The option-value parsers every command declares its numeric options with.
import { InvalidArgumentError } from 'commander';
import { describe, expect, it } from 'vitest';
import { float, int, positive } from '../../src/cli-values.js';

describe('option values', () => {
  it('int takes integers in range and names the option and the rule otherwise', () => {
    expect(int('--n', 0)('0')).toBe(0);
    expect(int('--n', 1)(' 12 ')).toBe(12);
    expect(int('--port', 0, 65535)('65535')).toBe(65535);
    for (const bad of ['', ' ', '1.5', 'x', '-1', '1e400']) expect(() => int('--n', 0)(bad), bad).toThrow(InvalidArgumentError);
    expect(() => int('--n', 1)('0')).toThrow('--n must be an integer >= 1');
    expect(() => int('--port', 0, 65535)('65536')).toThrow('--port must be an integer from 0 to 65535');
    expect(int('--seed')('-3')).toBe(-3);
    expect(() => int('--seed')('2.5')).toThrow('--seed must be an integer');
    expect(() => int('--seed')('9007199254740993')).toThrow(InvalidArgumentError); // past Number.MAX_SAFE_INTEGER
  });

  it('float and positive refuse empty, infinite and out-of-rule values', () => {
    expect(float('--top-p', (n) => n > 0 && n <= 1, 'in (0, 1]')('0.95')).toBe(0.95);
    expect(() => float('--top-p', (n) => n > 0 && n <= 1, 'in (0, 1]')('1.5')).toThrow('--top-p must be in (0, 1]');
    expect(positive('--threshold')('2.5')).toBe(2.5);
    for (const bad of ['', '0', '-1', 'Infinity', 'NaN']) expect(() => positive('--threshold')(bad), bad).toThrow(InvalidArgumentError);
  });
});
