#!/usr/bin/env node
// uit serve's fairness under load (issue 21): a big request within the defaults (32 prompts x n 16
// x max_tokens 128) is sent to `uit serve`, then, `--delay` seconds later, a 4-token request. It
// prints how long each took, which finished first, and a digest of the big request's texts (the
// same seed must give the same digest before and after a scheduler change). Timing only: nothing
// here is a test. Not part of `npm run bench`; docs/serve.md quotes it. Run it on a quiet machine:
//
//   npm run build && flock -x /tmp/uit-cpu.lock node bench/serve-fairness.js
//   node bench/serve-fairness.js --bin /path/to/other/checkout/bin/uit.js   # another build, same load
//   node bench/serve-fairness.js --runs 3 --batch-size 16 --json
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT, SHARED_DATA, summary } from './lib/common.js';

const { values: args } = parseArgs({
  options: {
    bin: { type: 'string', default: join(ROOT, 'bin', 'uit.js') },
    model: { type: 'string', default: join(ROOT, 'models', 'uit-tiny') },
    prompts: { type: 'string', default: '32' },
    n: { type: 'string', default: '16' },
    'max-tokens': { type: 'string', default: '128' },
    'small-tokens': { type: 'string', default: '4' },
    delay: { type: 'string', default: '2' },
    runs: { type: 'string', default: '1' },
    'batch-size': { type: 'string' },
    threads: { type: 'string' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (args.help) {
  console.log(`usage: node bench/serve-fairness.js [--bin BIN] [--model DIR] [--prompts 32] [--n 16] [--max-tokens 128]
                 [--small-tokens 4] [--delay 2] [--runs 1] [--batch-size N] [--threads N] [--json]`);
  process.exit(0);
}
const num = (k) => Number(args[k]);

/** Real Ni-v2 definitions, one per prompt, cut to 300 characters. */
const definitions = readFileSync(join(SHARED_DATA, 'niv2', 'definitions.jsonl'), 'utf8')
  .split('\n')
  .filter(Boolean)
  .map((l) => JSON.parse(l).definition);
const prompts = definitions.slice(0, num('prompts')).map((d) => `Definition: ${d.slice(0, 300)}\nOutput:`);

async function startServer() {
  const extra = [];
  if (args['batch-size']) extra.push('--batch-size', args['batch-size']);
  if (args.threads) extra.push('--threads', args.threads);
  const child = spawn(process.execPath, [resolve(args.bin), 'serve', '-m', args.model, '--port', '0', '--json', '-q', ...extra], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const line = await new Promise((ok, fail) => {
    let buf = '';
    child.stdout.on('data', (c) => {
      buf += c;
      if (buf.includes('\n')) ok(buf.split('\n')[0]);
    });
    child.once('exit', (code) => fail(new Error(`uit serve exited with ${code} before it listened`)));
  });
  return { child, url: JSON.parse(line).base_url };
}

/** Peak RSS of a process (MiB), from /proc. */
function peakRss(pid) {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmHWM:\s+(\d+) kB/);
  return m ? Number(m[1]) / 1024 : null;
}

async function complete(url, body) {
  const t0 = performance.now();
  const res = await fetch(`${url}/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const json = await res.json();
  if (res.status !== 200) throw new Error(`${res.status}: ${JSON.stringify(json)}`);
  return { seconds: (performance.now() - t0) / 1000, done: performance.now(), json };
}

const sleep = (s) => new Promise((r) => setTimeout(r, s * 1000));
const model = (url) => fetch(`${url}/models`).then((r) => r.json()).then((j) => j.data[0].id);

const load = loadavg();
const runs = [];
const { child, url } = await startServer();
try {
  const name = await model(url);
  await complete(url, { model: name, prompt: 'warm up', max_tokens: 4, seed: 0 });
  for (let run = 0; run < num('runs'); run++) {
    const big = complete(url, { model: name, prompt: prompts, n: num('n'), max_tokens: num('max-tokens'), seed: 1 });
    await sleep(num('delay'));
    const small = await complete(url, { model: name, prompt: 'Hi', max_tokens: num('small-tokens'), seed: 2 });
    const b = await big;
    const digest = createHash('sha256').update(JSON.stringify(b.json.choices.map((c) => c.text))).digest('hex').slice(0, 16);
    runs.push({
      big_s: b.seconds,
      small_s: small.seconds,
      small_first: small.done < b.done,
      big_tokens: b.json.usage.completion_tokens,
      big_digest: digest,
    });
    if (!args.json) {
      console.log(
        `run ${run + 1}: big ${b.seconds.toFixed(1)} s (${b.json.usage.completion_tokens} tokens, texts ${digest}); ` +
          `small sent ${args.delay} s later: ${small.seconds.toFixed(2)} s, finished ${small.done < b.done ? 'first' : 'after the big one'}`,
      );
    }
  }
  const result = {
    bin: args.bin,
    model: args.model,
    shape: { prompts: prompts.length, n: num('n'), max_tokens: num('max-tokens'), small_tokens: num('small-tokens'), delay_s: num('delay') },
    load_before: load.map((x) => Number(x.toFixed(2))),
    server_peak_rss_mib: peakRss(child.pid),
    small_s: summary(runs.map((r) => r.small_s)),
    big_s: summary(runs.map((r) => r.big_s)),
    runs,
  };
  if (args.json) console.log(JSON.stringify(result, null, 2));
  else {
    console.log(
      `small request: median ${result.small_s.median.toFixed(2)} s; big request: median ${result.big_s.median.toFixed(1)} s; ` +
        `server peak RSS ${result.server_peak_rss_mib?.toFixed(0)} MiB; load before ${result.load_before.join(' ')}`,
    );
  }
} finally {
  child.kill('SIGTERM');
}
