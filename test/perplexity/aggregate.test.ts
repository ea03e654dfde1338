// One number per candidate from its instances' scores, in both scoring modes (docs/scoring.md,
// "Scoring modes"), and the words a user reads when a candidate has none. The pair scores are
// hand-made with binary-exact numbers, so every mean below is exact.
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { aggregate, unscoredAggregate, unscoredText } from '../../src/perplexity/aggregate.js';
import type { PairScore } from '../../src/perplexity/scorer.js';
import { scoringOption } from '../../src/transfer/pipeline-options.js';

/** A pair's score: `sumCe` nats over `tokens` target tokens (0 tokens: an empty target). */
function pair(sumCe: number, tokens: number, truncatedPrefixTokens = 0): PairScore {
  return { tokens, sumCe, meanCe: tokens > 0 ? sumCe / tokens : null, truncatedPrefixTokens, targetIds: [], logprobs: null, cached: false };
}

describe('aggregate, uit mode', () => {
  it('is the token-weighted mean CE over the instances with a gold output', () => {
    const scores = [pair(3, 2), pair(0, 0), pair(1.5, 1, 4), pair(2.5, 5)];
    expect(aggregate(scores, [false, true, false, false], 'uit')).toEqual({
      meanCe: 7 / 8,
      unscored: null,
      sumCe: 7,
      tokens: 8,
      instances: 3,
      emptyInstances: 1,
      truncatedInstances: 1,
      instanceMeanCe: [1.5, null, 1.5, 0.5],
      chunkMeanCe: null,
    });
  });

  it('has no score when every gold output is empty', () => {
    expect(aggregate([pair(0, 0), pair(0, 0)], [true, true], 'uit')).toEqual({
      meanCe: null,
      unscored: 'no-gold-output',
      sumCe: 0,
      tokens: 0,
      instances: 0,
      emptyInstances: 2,
      truncatedInstances: 0,
      instanceMeanCe: [null, null],
      chunkMeanCe: null,
    });
  });
});

describe('aggregate, reference mode', () => {
  // 25 instances: slices [0:8] (CE 2 each), [8:16] (1.5 per token), [16:24] (one empty target,
  // the others 4), [24:] (one instance, 1 nat over 4 tokens)
  const scores = [
    ...Array.from({ length: 8 }, () => pair(2, 1)),
    ...Array.from({ length: 8 }, () => pair(3, 2)),
    pair(0, 0),
    ...Array.from({ length: 7 }, () => pair(4, 1)),
    pair(1, 4),
  ];
  const goldEmpty = scores.map((s) => s.tokens === 0);

  it('is the plain mean of the four slices, each slice token-weighted', () => {
    const a = aggregate(scores, goldEmpty, 'reference');
    expect(a.chunkMeanCe).toEqual([2, 1.5, 4, 0.25]);
    expect(a.meanCe).toBe((2 + 1.5 + 4 + 0.25) / 4);
    expect(a.unscored).toBeNull();
    expect(a.sumCe).toBe(16 + 24 + 28 + 1);
    expect(a.tokens).toBe(8 + 16 + 7 + 4);
    expect(a.instances).toBe(24);
    expect(a.emptyInstances).toBe(1);
  });

  it('has no score with 24 instances or fewer (an empty last slice) or a truncated prompt', () => {
    const short = aggregate(scores.slice(0, 24), goldEmpty.slice(0, 24), 'reference');
    expect(short.chunkMeanCe).toEqual([2, 1.5, 4, null]);
    expect(short.meanCe).toBeNull();
    expect(short.unscored).toBe('too-few-instances');
    const truncated = aggregate([...scores.slice(0, 24), pair(1, 4, 3)], goldEmpty, 'reference');
    expect(truncated.chunkMeanCe).toEqual([2, 1.5, 4, 0.25]);
    expect(truncated.meanCe).toBeNull();
    expect(truncated.unscored).toBe('prompt-over-context');
    expect(truncated.truncatedInstances).toBe(1);
  });
});

describe('unscoredAggregate', () => {
  it('scores nothing and counts the empty gold outputs', () => {
    expect(unscoredAggregate('prompt-over-context', [true, false, true])).toEqual({
      meanCe: null,
      unscored: 'prompt-over-context',
      sumCe: 0,
      tokens: 0,
      instances: 0,
      emptyInstances: 2,
      truncatedInstances: 0,
      instanceMeanCe: [null, null, null],
      chunkMeanCe: null,
    });
  });
});

describe('unscoredText', () => {
  it('says why a candidate has no score, and what to do', () => {
    expect(unscoredText('no-gold-output', 12)).toBe('no instance with a non-empty output to score the candidates on (12 instances looked at)');
    expect(unscoredText('too-few-instances', 20)).toBe(
      'reference scoring needs at least 25 instances (the reference scores slices [0:8], [8:16], [16:24], [24:] and gives no score when one is empty); this task has 20 to score: use --scoring uit',
    );
    expect(unscoredText('prompt-over-context', 32)).toBe(
      "a prompt and its gold output are longer than the scorer's context; the reference gives no score to such a candidate (--scoring uit shortens long inputs instead)",
    );
  });
});

describe('--scoring', () => {
  const parse = (args: string[]) =>
    new Command()
      .exitOverride()
      .configureOutput({ writeErr: () => {} })
      .addOption(scoringOption())
      .parse(args, { from: 'user' })
      .opts<{ scoring: string }>().scoring;

  it('takes uit (the default) or reference, and nothing else', () => {
    expect(parse([])).toBe('uit');
    expect(parse(['--scoring', 'uit'])).toBe('uit');
    expect(parse(['--scoring', 'reference'])).toBe('reference');
    expect(() => parse(['--scoring', 'ref'])).toThrow("option '--scoring <mode>' argument 'ref' is invalid. Allowed choices are uit, reference.");
  });
});
