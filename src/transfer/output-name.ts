// The `output` of a provenance line: where a task went, relative to the output (a file inside a
// folder output, `#N` for line N of a JSONL output, `templates.json#key` for a FLAN folder), so
// that outputs written to different places compare equal and a moved output folder stays valid.
// Every method (heuristic, model, API, denoise) writes it the same way.
import { relative } from 'node:path';

/** `where` (what a TaskWriter's write() returned) relative to `out`. */
export function outputName(out: string, where: string): string {
  if (where.startsWith(`${out}#`)) return where.slice(out.length);
  return relative(out, where).split('\\').join('/') || '.';
}
