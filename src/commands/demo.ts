// `uit demo`: converts the bundled sample (examples/: PromptSource, FLAN and P3 tasks) to Ni-v2
// and shows one converted task. Heuristic transfer for now; the model pipeline replaces it.
import type { Command } from 'commander';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { convert, type ConvertSummary } from '../transfer/convert.js';
import { summaryText } from './convert.js';

/** The bundled sample, next to src/ and dist/ in the package. */
export const EXAMPLES_DIR = fileURLToPath(new URL('../../examples/', import.meta.url));

/** The sample's parts, converted together into one output folder. */
export const DEMO_PARTS = ['promptsource', 'flan', 'p3'] as const;

export interface DemoResult {
  out: string;
  summary: ConvertSummary;
  /** One converted task: its file and Ni-v2 document. */
  example: { file: string; task: Record<string, unknown> };
}

export async function runDemo(opts: { out?: string; method?: string; examplesDir?: string }): Promise<DemoResult> {
  const out = opts.out ?? mkdtempSync(join(tmpdir(), 'uit-demo-'));
  const dir = opts.examplesDir ?? EXAMPLES_DIR;
  let exampleFile: string | undefined;
  const summary = await convert({
    input: DEMO_PARTS.map((p) => join(dir, p)),
    to: 'niv2',
    out,
    method: opts.method ?? 'heuristic',
    quiet: true,
    onTask: (t) => {
      exampleFile ??= t.output;
    },
  });
  const file = exampleFile!;
  return { out, summary, example: { file, task: JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown> } };
}

/** The example task for the terminal: definition, examples, and the first instances only. */
function preview(task: Record<string, unknown>, keep = 2): string {
  const shown: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(task)) {
    if (Array.isArray(v) && v.length === 0) continue;
    if (k === 'Instances' && Array.isArray(v) && v.length > keep) {
      shown[k] = [...v.slice(0, keep), `... ${v.length - keep} more`];
    } else shown[k] = v;
  }
  return JSON.stringify(shown, null, 2);
}

export function demoText(r: DemoResult): string {
  const lines: string[] = [];
  lines.push(`One converted task (${r.example.file}; empty fields and most instances left out):`);
  lines.push(preview(r.example.task));
  lines.push('');
  lines.push(summaryText(r.summary).trimEnd());
  lines.push(`Open ${r.out} to see every task.`);
  return lines.join('\n') + '\n';
}

export function register(program: Command): void {
  program
    .command('demo')
    .description('Convert the bundled sample (PromptSource, FLAN and P3 tasks in examples/) to Ni-v2 and show one converted task.')
    .option('-o, --out <dir>', 'output folder (default: a new temporary folder)')
    .option('--method <name>', 'transfer method', 'heuristic')
    .option('--json', 'print {out, summary, example: {file, task}} as JSON')
    .addHelpText(
      'after',
      `
The sample is small and the heuristic transfer needs no model, so this runs in seconds.

Examples:
  $ uit demo
  $ uit demo -o demo-out
  $ uit demo --json | jq .summary.tasks`,
    )
    .action(async (opts: { out?: string; method: string; json?: boolean }) => {
      const r = await runDemo({ out: opts.out, method: opts.method });
      process.stdout.write(opts.json ? JSON.stringify(r, null, 2) + '\n' : demoText(r));
    });
}
