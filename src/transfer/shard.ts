// `--shard k/n`: which tasks one of n independent jobs (a Slurm array task, a Kubernetes Indexed
// Job pod) takes. A task belongs to shard floor(h * n / 2^32) where h is the first 4 bytes
// (big-endian) of sha256("uit-shard\0" + task id): it depends on the task id alone, not on the
// input order, the other tasks, or which files a shard reads first, so every shard agrees and the
// n slices are disjoint and cover every task. Inputs that fail before they yield a task id (a file
// that does not parse) are assigned by their file path instead, so exactly one shard reports them.
import { createHash } from 'node:crypto';
import { ExitCode, UitError } from '../errors.js';

export interface Shard {
  /** 0-based: 0 .. count-1 (Slurm's $SLURM_ARRAY_TASK_ID with --array=0-(n-1), $JOB_COMPLETION_INDEX). */
  index: number;
  count: number;
}

/** Parses `k/n` (0 <= k < n). */
export function parseShard(text: string): Shard {
  const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(text);
  if (!m) throw new UitError(`--shard ${JSON.stringify(text)}: expected k/n, e.g. 0/4 (k counts from 0)`, ExitCode.USAGE);
  const index = Number(m[1]);
  const count = Number(m[2]);
  if (!(count >= 1 && count <= 1_000_000)) throw new UitError(`--shard ${text}: n must be between 1 and 1000000`, ExitCode.USAGE);
  if (!(index < count)) throw new UitError(`--shard ${text}: k must be below n (shards are numbered 0..${count - 1})`, ExitCode.USAGE);
  return { index, count };
}

/** The shard (0..count-1) that owns `key` (a task id, or a file path for inputs without one). */
export function shardOf(key: string, count: number): number {
  const h = createHash('sha256').update(`uit-shard\0${key}`).digest().readUInt32BE(0);
  return Math.floor((h * count) / 2 ** 32);
}

export function inShard(key: string, shard: Shard | undefined): boolean {
  return shard === undefined || shard.count === 1 || shardOf(key, shard.count) === shard.index;
}
