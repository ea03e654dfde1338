#!/usr/bin/env node
// Prompt lookup on real text: greedy transfer prompts (pair and few-shot style, the 5 held-out
// sources of models/uit-tiny/eval.json) with and without drafts, on one model folder. Prints the
// forwards, drafted and kept tokens, whether the outputs are identical, and the wall-time ratio.
// Not part of `npm run bench` (it has no peer); docs/performance.md quotes it.
//
//   npm run build && node bench/prompt-lookup.js [model-folder]     # default models/uit-tiny
import { readFileSync } from 'node:fs';
import { loadModel, generate } from '../dist/runtime/index.js';
import { buildTransferPrompt } from '../dist/transfer/prompt.js';
import { loadSeeds } from '../dist/transfer/seeds.js';
const ev = JSON.parse(readFileSync('models/uit-tiny/eval.json', 'utf8'));
const seeds = loadSeeds();
const m = await loadModel(process.argv[2] ?? 'models/uit-tiny', { threads: 1 });
const tot = { plain: 0, drafted: 0, fwdPlain: 0, fwdDraft: 0, acc: 0, dr: 0, tokens: 0, same: 0, n: 0 };
for (const style of ['pair', 'fewshot']) {
  for (const t of ev.transfer) {
    const prompt = buildTransferPrompt(t.source, style, style === 'fewshot' ? seeds.pairs : []);
    const o = { maxNewTokens: 64, greedy: true, stop: ['\n\n'] };
    await generate(m, [{ prompt }], o);
    let t0 = performance.now(); const a = await generate(m, [{ prompt }], { ...o, draftTokens: 0 }); tot.plain += performance.now() - t0;
    t0 = performance.now(); const b = await generate(m, [{ prompt }], o); tot.drafted += performance.now() - t0;
    tot.fwdPlain += a.timings.steps; tot.fwdDraft += b.timings.steps; tot.acc += b.timings.acceptedTokens; tot.dr += b.timings.draftedTokens; tot.tokens += b.timings.newTokens;
    tot.same += JSON.stringify(a.outputs) === JSON.stringify(b.outputs) ? 1 : 0; tot.n++;
  }
}
console.log(
  `${tot.n} prompts, ${tot.tokens} new tokens: ${tot.fwdPlain} forwards without drafts, ${tot.fwdDraft} with; ` +
    `${tot.acc} of ${tot.dr} drafted tokens kept; identical outputs ${tot.same}/${tot.n}; ` +
    `wall ${tot.plain.toFixed(0)} ms -> ${tot.drafted.toFixed(0)} ms (${(tot.plain / tot.drafted).toFixed(2)}x)`,
);
