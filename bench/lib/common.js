// Small shared helpers of the benchmark: statistics, timing, the prompts, machine facts.
import { readFileSync } from 'node:fs';
import { cpus, freemem, loadavg, release, totalmem, type as osType } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const SHARED_DATA = resolve(ROOT, '..', 'shared', 'data');

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n === 0 ? null : n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
};

/** {median, min, max, runs} of a list of numbers. */
export function summary(xs) {
  if (!xs.length) return null;
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs), runs: xs.length };
}

/**
 * Wall seconds and CPU seconds of this process (user + system, all threads) of one call, and the
 * peak RSS sampled every 5 ms during it (MiB). On a shared machine wall time measures the
 * neighbours too; with one intra-op thread CPU time measures the work.
 */
export async function timed(fn) {
  let peak = process.memoryUsage.rss();
  const timer = setInterval(() => {
    const r = process.memoryUsage.rss();
    if (r > peak) peak = r;
  }, 5);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  try {
    const value = await fn();
    const c = process.cpuUsage(c0);
    const wall = (performance.now() - t0) / 1000;
    peak = Math.max(peak, process.memoryUsage.rss());
    return { wall, cpu: (c.user + c.system) / 1e6, peak_rss_mib: peak / 2 ** 20, value };
  } finally {
    clearInterval(timer);
  }
}

/** Long real Ni-v2 definitions (the shared data), in file order. */
export function longDefinitions() {
  const lines = readFileSync(join(SHARED_DATA, 'niv2', 'definitions.jsonl'), 'utf8').split('\n').filter(Boolean);
  return lines.map((l) => JSON.parse(l)).filter((d) => d.definition.length > 400).map((d) => d.definition);
}

/**
 * The generation prompt: real Ni-v2 definitions cut to `tokens` tokens of the model's own
 * tokenizer, then "\nOutput:" (about 300 tokens whatever the vocabulary).
 */
export function benchPrompt(tokenizer, tokens = 290, defs = longDefinitions()) {
  const ids = tokenizer.encode(`Definition: ${defs.join('\n\n')}`).slice(0, tokens);
  return `${tokenizer.decode(ids).replace(/\uFFFD+$/, '')}\nOutput:`;
}

/** Eight different prompts: one definition each, cut to `tokens` tokens, then "\nOutput:". */
export function batchPrompts(tokenizer, n = 8, tokens = 290, defs = longDefinitions()) {
  return Array.from({ length: n }, (_, k) => benchPrompt(tokenizer, tokens - 10 * k, [defs[(k * 37) % defs.length], ...defs.slice(k + 1)]));
}

export function machine() {
  const c = cpus();
  return {
    cpu: c[0]?.model ?? 'unknown',
    cores: c.length,
    memory_gib: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    free_memory_gib_at_start: Math.round((freemem() / 2 ** 30) * 10) / 10,
    os: `${osType()} ${release()}`,
    load_average_at_start: loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

export function versions() {
  const pkg = (p) => {
    try {
      return JSON.parse(readFileSync(join(ROOT, p), 'utf8')).version;
    } catch {
      return null;
    }
  };
  return {
    node: process.versions.node,
    'onnxruntime-node': pkg('node_modules/onnxruntime-node/package.json'),
    '@huggingface/transformers': pkg('node_modules/@huggingface/transformers/package.json'),
    uit: pkg('package.json'),
  };
}

export const round = (x, d = 3) => (x === null || x === undefined || !Number.isFinite(x) ? x ?? null : Math.round(x * 10 ** d) / 10 ** d);
