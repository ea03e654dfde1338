// A model's identity for cache keys: a hash of the files that decide its outputs (the ONNX
// graph and weights, and tokenizer.json), not of its path, so a moved or copied model folder
// keeps its cached work and a re-exported one does not reuse stale results.
import { createReadStream, existsSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { createHash } from 'node:crypto';
import { ModelError } from '../errors.js';
import { canonicalJson, sha256Hex } from './keys.js';

/** Where a file's digest can be remembered between runs (a Cache is one: its file_digests table). */
export interface DigestMemo {
  lookupDigest(path: string, size: number, mtimeMs: number): string | undefined;
  rememberDigest(path: string, size: number, mtimeMs: number, sha256: string): void;
}

/** SHA-256 (hex) of a file's bytes, streamed; reuses `memo` while size and mtime are unchanged. */
export async function sha256File(path: string, memo?: DigestMemo): Promise<string> {
  let st;
  try {
    st = statSync(path);
  } catch (err) {
    throw new ModelError(`${path}: cannot read model file: ${(err as Error).message}`, { cause: err });
  }
  const known = memo?.lookupDigest(path, st.size, st.mtimeMs);
  if (known !== undefined) return known;
  const hash = createHash('sha256');
  await new Promise<void>((resolvePromise, reject) => {
    createReadStream(path, { highWaterMark: 1 << 20 })
      .on('data', (chunk) => hash.update(chunk))
      .on('error', (err) => reject(new ModelError(`${path}: cannot read model file: ${err.message}`, { cause: err })))
      .on('end', () => resolvePromise());
  });
  const digest = hash.digest('hex');
  memo?.rememberDigest(path, st.size, st.mtimeMs, digest);
  return digest;
}

/**
 * The identity of a model made of `files`: sha256 over the sorted (file name, content hash)
 * pairs. Only base names enter the hash, so the folder's location does not matter.
 */
export async function modelIdentity(files: readonly string[], memo?: DigestMemo): Promise<string> {
  if (files.length === 0) throw new ModelError('modelIdentity: no files given');
  const entries: { name: string; sha256: string }[] = [];
  for (const file of files) entries.push({ name: basename(file), sha256: await sha256File(file, memo) });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (let i = 1; i < entries.length; i++) {
    if (entries[i].name === entries[i - 1].name) throw new ModelError(`modelIdentity: two files named ${entries[i].name}`);
  }
  return sha256Hex(canonicalJson({ v: 1, kind: 'model', files: entries }));
}

/**
 * The files that define a Hugging Face style model folder for modelIdentity(): the ONNX graph
 * (default `onnx/model.onnx`), its external weights (`<graph>_data`) when present, and tokenizer.json.
 */
export function modelFiles(dir: string, onnxFile = join('onnx', 'model.onnx')): string[] {
  const graph = join(dir, onnxFile);
  const files = [graph];
  if (existsSync(`${graph}_data`)) files.push(`${graph}_data`);
  files.push(join(dir, 'tokenizer.json'));
  return files;
}
