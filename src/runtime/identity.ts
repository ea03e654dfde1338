// A model's identity for cache keys: sha256 over the decoder graph, its external data and
// tokenizer.json. Hashing a 24 GB GPT-J takes a minute, so the digest is memoised per folder by the
// files' (path, size, mtime) in a small JSON file under the user cache dir.
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, relative } from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../io/atomic.js';
import type { ModelFolder } from './model-folder.js';

/** $XDG_CACHE_HOME/uit, or ~/.cache/uit. */
export function userCacheDir(): string {
  const xdg = process.env.XDG_CACHE_HOME;
  return join(xdg && xdg.length > 0 ? xdg : join(homedir(), '.cache'), 'uit');
}

/**
 * The files that define what a model computes. The fast graphs are left out on purpose: they are
 * other views of the same weights (scripts/add-fast-graphs.py), so adding them to a folder does not
 * invalidate its cached generations and scores. A folder without model.onnx hashes its fast graphs.
 */
export function identityFiles(folder: ModelFolder): string[] {
  const f = folder.files;
  const graphs = f.decoder ? [f.decoder] : [f.fast].filter((p): p is string => p !== undefined);
  return [...graphs, ...f.externalData, f.tokenizer];
}

const memoSchema = z.record(
  z.string(),
  z.object({
    files: z.array(z.object({ path: z.string(), size: z.number(), mtimeMs: z.number() })),
    sha256: z.string(),
  }),
);
type Memo = z.infer<typeof memoSchema>;

function readMemo(file: string): Memo {
  try {
    return memoSchema.parse(JSON.parse(readFileSync(file, 'utf8')));
  } catch {
    return {}; // missing or unreadable memo: rehash
  }
}

export interface IdentityOptions {
  /** Where the memo lives (default: userCacheDir()/model-identity.json). */
  memoFile?: string;
  /** Ignore the memo and hash again. */
  refresh?: boolean;
}

/** `sha256:<hex>` of the model's defining files, memoised by (path, size, mtime). */
export async function modelIdentity(folder: ModelFolder, opts: IdentityOptions = {}): Promise<string> {
  const memoFile = opts.memoFile ?? join(userCacheDir(), 'model-identity.json');
  const files = identityFiles(folder).map((path) => {
    const st = statSync(path);
    return { path, size: st.size, mtimeMs: st.mtimeMs };
  });
  const memo = readMemo(memoFile);
  const hit = memo[folder.dir];
  if (!opts.refresh && hit && JSON.stringify(hit.files) === JSON.stringify(files)) return hit.sha256;

  const hash = createHash('sha256');
  for (const f of files) {
    // Name and size go in too, so moving bytes between files changes the identity.
    hash.update(`${relative(folder.dir, f.path)}\0${f.size}\0`);
    for await (const chunk of createReadStream(f.path, { highWaterMark: 4 << 20 })) hash.update(chunk as Buffer);
  }
  const sha256 = `sha256:${hash.digest('hex')}`;
  try {
    const latest = readMemo(memoFile); // another process may have written meanwhile
    latest[folder.dir] = { files, sha256 };
    writeFileAtomic(memoFile, JSON.stringify(latest, null, 1) + '\n');
  } catch {
    // A read-only cache dir only costs speed.
  }
  return sha256;
}
