// The teacher's work as a converted output records it: the provenance sidecar that `uit convert
// --method model` and `uit denoise` write next to their Ni-v2 tasks (docs/pipeline.md,
// "Provenance"). One line per task holds its source instruction, the transfer model, the scorer,
// every candidate with its mean cross-entropy, and the denoiser's pick; that is all distillation
// needs, so the task files themselves are not read.
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { InputError } from '../errors.js';
import { readJsonl } from '../io/jsonl.js';
import { Drops, type TeacherTask } from './teacher.js';

const candidate = z.object({ definition: z.string(), meanCe: z.number().nullable() });

const line = z.object({
  id: z.string().min(1),
  output: z.string().nullable().optional(),
  source: z.object({ file: z.string(), format: z.string(), id: z.string() }),
  method: z.string(),
  sourceInstruction: z.string().optional(),
  transfer: z.object({ model: z.string(), name: z.string() }).nullable().optional(),
  scorer: z.object({ model: z.string() }).optional(),
  candidates: z.array(candidate).optional(),
  chosen: z.number().int().nullable().optional(),
});

/** The provenance file of an output: OUT/provenance.jsonl, OUT.provenance.jsonl beside a file output, or the sidecar itself. */
export function provenanceFileOf(path: string): string {
  if (existsSync(path) && statSync(path).isDirectory()) {
    const p = join(path, 'provenance.jsonl');
    if (!existsSync(p)) throw new InputError({ file: path }, 'no provenance.jsonl in this folder: is it the output of uit convert --method model or uit denoise?');
    return p;
  }
  if (/(^|[\\/.])provenance\.jsonl$/.test(path)) {
    if (!existsSync(path)) throw new InputError({ file: path }, 'no such file');
    return path;
  }
  const sidecar = path.replace(/\.jsonl?$/i, '') + '.provenance.jsonl';
  if (!existsSync(sidecar)) throw new InputError({ file: path }, `no provenance sidecar ${sidecar} beside this output`);
  return sidecar;
}

/** Reads one output's provenance into teacher tasks; lines that cannot give pairs are counted in `drops`. */
export async function readOutputProvenance(path: string, drops: Drops): Promise<TeacherTask[]> {
  const file = provenanceFileOf(path);
  const out: TeacherTask[] = [];
  for await (const { value, line: n } of readJsonl(file)) {
    const parsed = line.safeParse(value);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new InputError({ file, line: n, field: issue.path.join('.') || undefined }, `not a uit provenance line: ${issue.message}`);
    }
    const p = parsed.data;
    const where = `${file}:${n}`;
    if (p.output === null) {
      drops.add('teacher-filtered', p.id);
      continue;
    }
    if (!['model', 'api', 'denoise'].includes(p.method) || !p.candidates || p.candidates.length === 0) {
      drops.add('not-a-transfer', p.id);
      continue;
    }
    if (!p.sourceInstruction || p.sourceInstruction.trim() === '') {
      drops.add('no-source-instruction', p.id);
      continue;
    }
    if (p.chosen != null && !(p.chosen >= 0 && p.chosen < p.candidates.length)) {
      throw new InputError({ file, line: n, field: 'chosen' }, `${p.chosen} is not an index of the ${p.candidates.length} candidates`);
    }
    out.push({
      task: p.id,
      source: { file: p.source.file, format: p.source.format },
      sourceInstruction: p.sourceInstruction,
      // `uit denoise` of candidates without a transfer record: the teacher is not known.
      teacher: p.transfer ? { model: p.transfer.model, name: p.transfer.name } : { model: 'unknown', name: 'unknown' },
      scorer: p.scorer?.model ?? null,
      candidates: p.candidates.map((c) => ({ definition: c.definition, meanCe: c.meanCe })),
      chosen: p.chosen ?? null,
      from: where,
    });
  }
  return out;
}
