// The seeded shuffle that picks a task's scoring instances. The same (seed, task id) always gives
// the same order, on any machine and in any shard, whatever other tasks are in the run.
//
// PRNG: xoshiro128** (the runtime's Rng), its 128-bit state taken from
// sha256("uit-instances\0<seed>\0<task id>"); the shuffle is Fisher-Yates from the last position
// down, drawing j = floor(nextFloat() * (i + 1)) with nextFloat's 53 random bits.
import { createHash } from 'node:crypto';
import { Rng } from '../runtime/index.js';

export function instanceRng(seed: number, taskId: string): Rng {
  if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be a safe integer, got ${seed}`);
  const digest = createHash('sha256').update(`uit-instances\0${seed}\0${taskId}`).digest();
  return new Rng([digest.readUInt32LE(0), digest.readUInt32LE(4), digest.readUInt32LE(8), digest.readUInt32LE(12)]);
}

/** A shuffled copy of `items` (Fisher-Yates with `rng`). */
export function shuffled<T>(items: readonly T[], rng: Rng): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rng.nextFloat() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}
