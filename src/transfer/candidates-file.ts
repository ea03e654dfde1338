// The candidates JSONL that `uit transfer` writes and `uit denoise` reads: one line per task,
//   {"task": ID, "source": {"file", "format", "instruction"}, "candidates": [TEXT, ...], "transfer": {...}}
// `uit denoise` needs only "task" and "candidates" (strings, or objects with a "definition" or
// "text" field), so candidates made anywhere (an API, a script, a person) can be denoised.
// "transfer" records how `uit transfer` made them (model identity, prompt style, parameters) and
// is carried into the provenance of the denoised output.
import { z } from 'zod';
import { InputError } from '../errors.js';
import { readJsonl } from '../io/jsonl.js';
import type { JsonObject } from '../cache/index.js';

export interface TransferInfo {
  /** `local` (an ONNX model folder) or `openai` (an OpenAI-compatible API). */
  backend: 'local' | 'openai';
  /** Generator identity, as in cache keys. */
  model: string;
  /** What the user called it: the model folder's name, or the API model name. */
  name: string;
  promptStyle: 'fewshot' | 'pair';
  /** The few-shot seed pairs' digest and count (null for the pair style). */
  seeds: { digest: string; count: number } | null;
  /** Sampling parameters (GenerationParams without undefined fields). */
  params: JsonObject;
  candidates: number;
}

export interface CandidatesRecord {
  task: string;
  source?: { file: string; format: string; instruction: string };
  candidates: string[];
  transfer?: TransferInfo | null;
}

const candidate = z.union([
  z.string(),
  z.object({ definition: z.string() }).transform((c) => c.definition),
  z.object({ text: z.string() }).transform((c) => c.text),
]);

const transferInfo = z.object({
  backend: z.enum(['local', 'openai']),
  model: z.string(),
  name: z.string(),
  promptStyle: z.enum(['fewshot', 'pair']),
  seeds: z.object({ digest: z.string(), count: z.number().int() }).nullable(),
  params: z.record(z.string(), z.any()),
  candidates: z.number().int(),
});

const line = z.object({
  task: z.string().min(1),
  source: z.object({ file: z.string(), format: z.string(), instruction: z.string() }).optional(),
  candidates: z.array(candidate).min(1),
  transfer: transferInfo.nullable().optional(),
});

export interface LoadedCandidates {
  file: string;
  byTask: Map<string, { record: CandidatesRecord; line: number }>;
}

/** Reads a whole candidates file (one entry per task; a task twice is an error). */
export async function readCandidatesFile(file: string): Promise<LoadedCandidates> {
  const byTask = new Map<string, { record: CandidatesRecord; line: number }>();
  for await (const { value, line: n } of readJsonl(file)) {
    const parsed = line.safeParse(value);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new InputError(
        { file, line: n, field: issue.path.join('.') || undefined },
        `expected {"task": string, "candidates": [string, ...]}: ${issue.message}`,
      );
    }
    const rec = parsed.data as CandidatesRecord;
    const seen = byTask.get(rec.task);
    if (seen) throw new InputError({ file, line: n, field: 'task' }, `task ${JSON.stringify(rec.task)} already has candidates on line ${seen.line}`);
    byTask.set(rec.task, { record: rec, line: n });
  }
  return { file, byTask };
}
