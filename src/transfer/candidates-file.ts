// The candidates JSONL that `uit transfer` writes and `uit denoise` reads: one line per task,
//   {"task": ID, "source": {"file", "format", "instruction"}, "candidates": [TEXT, ...], "transfer": {...}}
// `uit denoise` needs only "task" and "candidates" (strings, or objects with a "definition" or
// "text" field), so candidates made anywhere (an API, a script, a person) can be denoised. A
// candidate object may carry its own "positiveExamples" ([{"input", "output", "explanation"?}]):
// they replace the task's in its scoring prompts and, when it is picked, in the written task.
// "task" is the task's uit id, or the UIT reference's task name (the id + ".json").
// "transfer" records how `uit transfer` made them (model identity, prompt style, parameters) and
// is carried into the provenance of the denoised output.
import { z } from 'zod';
import { InputError } from '../errors.js';
import { readJsonl } from '../io/jsonl.js';
import type { JsonObject } from '../cache/index.js';
import type { Candidate } from '../perplexity/index.js';

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
  candidates: Candidate[];
  transfer?: TransferInfo | null;
}

const example = z.object({ input: z.string(), output: z.string(), explanation: z.string().optional() });
const examples = z.array(example).min(1).optional();

const candidate = z.union([
  z.string().transform((definition): Candidate => ({ definition })),
  z.object({ definition: z.string(), positiveExamples: examples }).transform(toCandidate),
  z.object({ text: z.string(), positiveExamples: examples }).transform((c) => toCandidate({ definition: c.text, positiveExamples: c.positiveExamples })),
]);

function toCandidate(c: { definition: string; positiveExamples?: z.infer<typeof example>[] }): Candidate {
  if (!c.positiveExamples) return { definition: c.definition };
  const positiveExamples = c.positiveExamples.map((e) => ({ input: e.input, output: e.output, ...(e.explanation !== undefined ? { explanation: e.explanation } : {}) }));
  return { definition: c.definition, positiveExamples };
}

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

/** A task's entry: by its id, or by the UIT reference's name for it (the id + ".json"). */
export function candidatesEntry(loaded: LoadedCandidates, taskId: string): { record: CandidatesRecord; line: number } | undefined {
  return loaded.byTask.get(taskId) ?? loaded.byTask.get(`${taskId}.json`);
}

/** The entries that no task of `ids` took (by its id or its reference name). */
export function unusedEntries(loaded: LoadedCandidates, ids: ReadonlySet<string>): string[] {
  return [...loaded.byTask.keys()].filter((k) => !ids.has(k) && !(/\.json$/i.test(k) && ids.has(k.replace(/\.json$/i, '')) && !loaded.byTask.has(k.replace(/\.json$/i, ''))));
}
