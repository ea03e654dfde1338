// A separate process that writes score batches to a cache, for the concurrency and crash tests.
// Usage: node writer.mjs DIST CACHE WRITER_ID BATCHES ROWS_PER_BATCH  (BATCHES 0 = until killed),
// DIST being a compiled dist/ folder.
// Prints "begin <batch>" before and "committed <batch>" after each batch's transaction.
// With UIT_TEST_BARRIER=DIR:N, waits until N writers have opened the cache before writing.
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [dist, cachePath, writerId, batchesArg, rowsArg] = process.argv.slice(2);
const { openCache } = await import(pathToFileURL(join(dist, 'cache', 'index.js')).href);
const batches = Number(batchesArg);
const rows = Number(rowsArg);
// Shared paragraphs: both writers insert the same text pieces, as two shards of one job would.
const shared = 'Definition: Answer the question about the passage.\n\nPositive Examples 1\nInput: a\nOutput: b\n\n';
const filler = 'x'.repeat(2000);

const cache = openCache(cachePath);
cache.startRun('test-writer', { writerId });
if (process.env.UIT_TEST_BARRIER) {
  const [dir, n] = process.env.UIT_TEST_BARRIER.split(':');
  writeFileSync(`${dir}/${writerId}`, '');
  const deadline = Date.now() + 30_000;
  while (readdirSync(dir).length < Number(n)) {
    if (Date.now() > deadline) throw new Error(`writer ${writerId}: the other writers never arrived`);
    await new Promise((r) => setTimeout(r, 2));
  }
}
for (let b = 0; batches === 0 || b < batches; b++) {
  const records = [];
  for (let i = 0; i < rows; i++) {
    records.push({
      scorerId: 'scorer-test',
      prefix: `${shared}Now complete the following example -\nInput: ${writerId} ${b} ${i} ${filler}\nOutput: `,
      target: `w${writerId}/b${b}`,
      tokenCount: 3,
      sumCe: b + i / 1000,
      meanCe: (b + i / 1000) / 3,
      tokenLogprobs: [-1, -2, -3],
    });
  }
  process.stdout.write(`begin ${b}\n`);
  cache.putScores(records);
  process.stdout.write(`committed ${b}\n`);
}
cache.finishRun('ok');
cache.close();
