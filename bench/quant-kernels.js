#!/usr/bin/env node
// Weight formats on this CPU: one GPT-J layer's linear layers (bench/quant-kernels.py) in float32,
// float16, MatMulNBits 4 and 8 bits (block sizes, symmetric or not, accuracy levels), int8
// DequantizeLinear + MatMul and int8 DynamicQuantizeMatMul. Each format runs in a fresh process, so
// its RSS after loading is its own. Prints a table and writes JSON (docs/export.md, "Which int8").
//
//   /usr/bin/python3 bench/quant-kernels.py /tmp/qk --d 4096       # the graphs (~2.5 GB on disk)
//   flock -x /tmp/uit-cpu.lock node bench/quant-kernels.js /tmp/qk [--out bench/results/quant-kernels.json]
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const [, self, dir, ...rest] = process.argv;
const at = (flag, dflt) => (rest.includes(flag) ? rest[rest.indexOf(flag) + 1] : dflt);

if (rest[0] === '--child') {
  // One format: load, then time M = 1, 16 and 256 rows; print JSON.
  const ort = (await import('onnxruntime-node')).default;
  const variant = rest[1];
  const d = Number(rest[2]);
  const rss = () => process.memoryUsage.rss() / 2 ** 20;
  const rss0 = rss();
  const t0 = performance.now();
  const s = await ort.InferenceSession.create(join(dir, variant, 'model.onnx'), { intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'all' });
  const loadMs = performance.now() - t0;
  const rssLoaded = rss();
  const x = (m) => {
    const a = new Float32Array(m * d);
    for (let i = 0; i < a.length; i++) a[i] = Math.sin(i * 0.37) ;
    return new ort.Tensor('float32', a, [m, d]);
  };
  const out = { variant, load_ms: loadMs, rss_before_mib: rss0, rss_loaded_mib: rssLoaded, ms: {} };
  for (const [m, runs] of [[1, 15], [16, 5], [256, 2]]) {
    const feeds = { x: x(m) };
    const first = await s.run(feeds);
    const times = [];
    for (let r = 0; r < runs; r++) {
      const t = performance.now();
      await s.run(feeds);
      times.push(performance.now() - t);
    }
    times.sort((a, b) => a - b);
    out.ms[m] = times[Math.floor(times.length / 2)];
    if (m === 16) out.y16 = Array.from(first.y.data.subarray(0, 4096));
  }
  out.rss_after_mib = rss();
  process.stdout.write(JSON.stringify(out));
  process.exit(0);
}

const { d, variants } = JSON.parse(readFileSync(join(dir, 'variants.json'), 'utf8'));
const load0 = loadavg().map((x) => x.toFixed(2));
const rows = [];
for (const v of variants) {
  const text = execFileSync(process.execPath, [fileURLToPath(import.meta.url), dir, '--child', v, String(d)], { encoding: 'utf8', maxBuffer: 1 << 26 });
  rows.push(JSON.parse(text));
  process.stderr.write(`${v} done\n`);
}
const ref = rows.find((r) => r.variant === 'fp32');
for (const r of rows) {
  let num = 0;
  let den = 0;
  for (let i = 0; i < r.y16.length; i++) {
    num += (r.y16[i] - ref.y16[i]) ** 2;
    den += ref.y16[i] ** 2;
  }
  r.rel_error_vs_fp32 = Math.sqrt(num / den);
}
for (const r of rows) delete r.y16;
const weightsMb = (12 * d * d * 4) / 1e6;
const lines = [`one GPT-J layer's linear layers, d ${d} (${weightsMb.toFixed(0)} MB in float32), 1 thread; load ${load0.join(' ')} at start, ${loadavg().map((x) => x.toFixed(2)).join(' ')} at end`];
lines.push(`${'format'.padEnd(24)} ${'M=1 ms'.padStart(9)} ${'M=16 ms'.padStart(9)} ${'M=256 ms'.padStart(9)} ${'x fp32 M=1'.padStart(11)} ${'RSS MiB'.padStart(8)} ${'load s'.padStart(7)}  rel. error`);
for (const r of rows) {
  lines.push(`${r.variant.padEnd(24)} ${r.ms[1].toFixed(1).padStart(9)} ${r.ms[16].toFixed(1).padStart(9)} ${r.ms[256].toFixed(0).padStart(9)} ${(ref.ms[1] / r.ms[1]).toFixed(2).padStart(11)} ${(r.rss_loaded_mib - r.rss_before_mib).toFixed(0).padStart(8)} ${(r.load_ms / 1000).toFixed(1).padStart(7)}  ${r.rel_error_vs_fp32.toExponential(1)}`);
}
console.log(lines.join('\n'));
const outFile = at('--out');
if (outFile) writeFileSync(outFile, `${JSON.stringify({ date: new Date().toISOString(), d, load_average_at_start: load0, rows, table: lines }, null, 1)}\n`);
void self;
