// The few-shot seed pairs of the transfer prompt: data, not code (DESIGN.md). The default file is
// src/transfer/seed-pairs.json (shipped with the package); `--seeds FILE` replaces it. Accepted
// shapes: a JSON array of {source, definition}, or an object with such an array under "pairs".
// Other fields of a pair (e.g. where it came from) are allowed and ignored.
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { canonicalJson, sha256Hex } from '../cache/index.js';
import { InputError } from '../errors.js';
import type { SeedPair } from './prompt.js';

export const DEFAULT_SEEDS_PATH = fileURLToPath(new URL('../../src/transfer/seed-pairs.json', import.meta.url));

const pairs = z.array(z.object({ source: z.string().min(1), definition: z.string().min(1) }));

export interface Seeds {
  pairs: SeedPair[];
  /** Where they came from (as given). */
  file: string;
  /** sha256 of the pairs' canonical JSON (first 16 hex digits), recorded in provenance. */
  digest: string;
}

export function loadSeeds(path: string = DEFAULT_SEEDS_PATH): Seeds {
  if (!existsSync(path)) {
    throw new InputError(
      { file: path },
      path === DEFAULT_SEEDS_PATH
        ? 'the default seed pairs are missing from this installation; pass --seeds FILE (a JSON array of {"source", "definition"}) or use --prompt-style pair'
        : 'cannot read: no such file',
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new InputError({ file: path }, `not valid JSON: ${(err as Error).message}`);
  }
  const wrapped = value !== null && typeof value === 'object' && !Array.isArray(value) && 'pairs' in value;
  const parsed = pairs.safeParse(wrapped ? (value as { pairs: unknown }).pairs : value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = [...(wrapped ? ['pairs'] : []), ...issue.path].join('.');
    throw new InputError(
      { file: path, field: field || undefined },
      `expected a JSON array of {"source": string, "definition": string} (or {"pairs": [...]}): ${issue.message}`,
    );
  }
  const list = parsed.data.map((p) => ({ source: p.source, definition: p.definition }));
  return { pairs: list, file: path, digest: sha256Hex(canonicalJson(list)).slice(0, 16) };
}
