// Encodes the training corpus with @huggingface/tokenizers, the tokenizer the runtime uses, so the
// ids the model trains on are exactly the ids it sees in `uit`.
//
//   node scripts/encode-corpus.mjs TOKENIZER_DIR CORPUS.jsonl OUT_PREFIX
//
// CORPUS.jsonl: one {"text": ...} or {"segments": [...]} per line. Writes, for numpy in the
// trainer: OUT_PREFIX.ids.bin (uint16 little-endian token ids, every document followed by
// <|endoftext|>), OUT_PREFIX.target.bin (uint8 per token: 1 for a document's target, i.e. its last
// segment and the <|endoftext|> after it, or the whole of a document without segments; 0 for the
// context before it) and OUT_PREFIX.docs.bin (uint32 little-endian start offsets of the documents,
// plus the total as a last entry).
import { createReadStream, readFileSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';

const [tokDir, corpusPath, outPrefix] = process.argv.slice(2);
if (!outPrefix) {
  console.error('usage: node scripts/encode-corpus.mjs TOKENIZER_DIR CORPUS.jsonl OUT_PREFIX');
  process.exit(2);
}
const tokenizerJson = JSON.parse(readFileSync(join(tokDir, 'tokenizer.json'), 'utf8'));
const tokenizerConfig = JSON.parse(readFileSync(join(tokDir, 'tokenizer_config.json'), 'utf8'));
const tokenizer = new Tokenizer(tokenizerJson, tokenizerConfig);
const eos = tokenizer.token_to_id(tokenizerConfig.eos_token);
if (eos === undefined) throw new Error(`eos token ${tokenizerConfig.eos_token} is not in the vocabulary`);
if (Object.keys(tokenizerJson.model.vocab).length > 65536) throw new Error('vocabulary too large for uint16 ids');

let ids = new Uint16Array(1 << 20);
let target = new Uint8Array(1 << 20);
let n = 0;
const starts = [];
const push = (id, isTarget) => {
  if (n === ids.length) {
    const bigger = new Uint16Array(ids.length * 2);
    bigger.set(ids);
    ids = bigger;
    const t = new Uint8Array(target.length * 2);
    t.set(target);
    target = t;
  }
  target[n] = isTarget ? 1 : 0;
  ids[n++] = id;
};
const encode = (text) => tokenizer.encode(text, { add_special_tokens: false }).ids;
let splitDiffers = 0;

const lines = createInterface({ input: createReadStream(corpusPath, 'utf8'), crlfDelay: Infinity });
for await (const line of lines) {
  if (!line) continue;
  const doc = JSON.parse(line);
  starts.push(n);
  // `segments` are tokenized one by one and the ids concatenated, as the scorer does with a
  // scoring prefix and its target.
  const parts = doc.segments ?? [doc.text];
  const pieces = parts.map(encode);
  if (parts.length > 1 && doc.kind !== 'score' && pieces.flat().join() !== encode(parts.join('')).join()) splitDiffers++;
  pieces.forEach((p, k) => {
    for (const id of p) push(id, k === pieces.length - 1);
  });
  push(eos, true);
}
starts.push(n);
const idsOut = ids.subarray(0, n);
writeFileSync(`${outPrefix}.ids.bin`, Buffer.from(idsOut.buffer, idsOut.byteOffset, idsOut.byteLength));
writeFileSync(`${outPrefix}.target.bin`, target.subarray(0, n));
const docs = Uint32Array.from(starts);
writeFileSync(`${outPrefix}.docs.bin`, Buffer.from(docs.buffer));
const targets = target.subarray(0, n).reduce((a, b) => a + b, 0);
// transfer documents split before the definition must tokenize like the whole text
console.log(JSON.stringify({ documents: starts.length - 1, tokens: n, target_tokens: targets, eos, split_differs: splitDiffers }));
