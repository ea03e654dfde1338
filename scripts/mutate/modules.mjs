// The modules `npm run mutate` covers: where a silent bug costs users most (issue 26). Each names
// the files Stryker mutates and the test files that exercise them in-process. Tests that run the
// CLI from dist/ are left out: they run the built code, never the mutant, and only cost time.
export const MODULES = {
  perplexity: {
    mutate: ['src/perplexity/**/*.ts', '!src/perplexity/index.ts', '!src/perplexity/select.ts'],
    tests: [
      'test/perplexity/aggregate.test.ts',
      'test/perplexity/definition-scorer.test.ts',
      'test/perplexity/engine.test.ts',
      'test/perplexity/fit-prompt.test.ts',
      'test/perplexity/fit-prompt-cut.test.ts',
      'test/perplexity/fit-prompt-setup.test.ts',
      'test/perplexity/plan.test.ts',
      'test/perplexity/scorer.test.ts',
      'test/perplexity/scoring-prompt.test.ts',
      'test/perplexity/segment-tokenizer.test.ts',
      'test/perplexity/shuffle.test.ts',
      'test/perplexity/token-bound.test.ts',
      'test/perplexity/uit.test.ts',
    ],
  },
  'cache-keys': {
    mutate: ['src/cache/keys.ts'],
    tests: ['test/cache/keys.test.ts'],
  },
  // auth: the bearer-token check in server.ts; limits: request validation in protocol.ts
  serve: {
    mutate: ['src/serve/protocol.ts', 'src/serve/server.ts:authorize'],
    tests: ['test/serve/protocol.test.ts', 'test/serve/server.test.ts'],
  },
  'shard-select': {
    mutate: ['src/transfer/shard.ts', 'src/perplexity/select.ts'],
    tests: ['test/pipeline/units.test.ts', 'test/perplexity/uit.test.ts'],
  },
  'runtime-generation': {
    mutate: ['src/runtime/generation/*.ts'],
    tests: [
      'test/runtime/generate.test.ts',
      'test/runtime/generate-pinned.test.ts',
      'test/runtime/prompt-lookup.test.ts',
      'test/runtime/sampling.test.ts',
      'test/runtime/shared.test.ts',
      'test/runtime/stop.test.ts',
      'test/runtime/text-generator.test.ts',
    ],
  },
  'io-atomic': {
    mutate: ['src/io/atomic.ts'],
    tests: ['test/io/atomic.test.ts'],
  },
};
