// Times model.gen.onnx against the rewritten model.gen2.onnx (see the .py beside this) and checks
// that their logits agree. Args: rows past.
import ort from 'onnxruntime-node';
const dir = 'bench/models/gptj-25m/onnx/';
const L = 8, H = 8, D = 64;
const R = Number(process.argv[2] ?? 16), P = Number(process.argv[3] ?? 330);
const feeds = {
  input_ids: new ort.Tensor('int64', new BigInt64Array(R).fill(5n), [R, 1]),
  attention_mask: new ort.Tensor('int64', BigInt64Array.from({ length: R * (P + 1) }, (_, i) => ((i % (P + 1)) < P - 20 || (i % (P + 1)) === P ? 1n : 0n)), [R, P + 1]),
  position_ids: new ort.Tensor('int64', new BigInt64Array(R).fill(BigInt(P - 20)), [R, 1]),
};
for (let l = 0; l < L; l++) for (const kv of ['key', 'value']) feeds[`past_key_values.${l}.${kv}`] = new ort.Tensor('float32', Float32Array.from({ length: R * H * P * D }, () => Math.random() - 0.5), [R, H, P, D]);
const outs = {};
for (const g of ['model.gen.onnx', 'model.gen2.onnx']) {
  const s = await ort.InferenceSession.create(dir + g, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  const fetch = s.outputNames;
  for (let i = 0; i < 2; i++) outs[g] = await s.run(feeds, fetch);
  const N = 8; const c0 = process.cpuUsage(); const t0 = performance.now();
  for (let i = 0; i < N; i++) await s.run(feeds, fetch);
  const c = process.cpuUsage(c0);
  console.log(g, 'rows', R, 'past', P, 'wall', ((performance.now() - t0) / N).toFixed(1), 'ms cpu', ((c.user + c.system) / 1000 / N).toFixed(1), 'ms');
  await s.release();
}
let d = 0; const a = outs['model.gen.onnx'].logits_last.data, b = outs['model.gen2.onnx'].logits_last.data;
for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
console.log('max |diff| logits_last', d);
