// `uit denoise`: the scoring half of the pipeline. Scores candidate definitions (from
// `uit transfer`, an API, or anywhere) with the UIT scoring prompt against the source tasks'
// instances, keeps the lowest-perplexity one(s) and writes Ni-v2 tasks with provenance.
import type { Command } from 'commander';
import { Option } from 'commander';
import { FORMAT_NAMES } from '../formats/names.js';
import { int } from '../cli-values.js';
import { addDenoiseOptions, addRunOptions, type PipelineCliOptions } from '../transfer/pipeline-options.js';

export function register(program: Command): void {
  const cmd = program
    .command('denoise')
    .summary('score candidate definitions and keep the best by perplexity')
    .description(
      "Score candidate definitions of each task with a scoring model (the perplexity of the task's gold " +
        'outputs under the UIT scoring prompt) and keep the best (perplexity denoising); writes Ni-v2 tasks.',
    )
    .argument('<input...>', 'the source tasks: data files or folders (their instances are what candidates are scored on)')
    .option('--candidates <file>', 'JSONL, one {"task": ID, "candidates": [TEXT, ...]} per task (uit transfer writes it); not needed for inputs in the UIT reference\'s layout')
    .addOption(new Option('--from <format>', 'input format (default: detected)').choices(FORMAT_NAMES))
    .addOption(new Option('--to <format>', 'target format').choices(['niv2']).default('niv2'))
    .option('-o, --out <path>', 'output: a folder (a <task>.json per task), a .json file (one task) or a .jsonl file')
    .option('--force', 'replace an existing output folder as a whole (only one uit wrote); without it, a folder that holds files is refused')
    .option('--rows <file>', 'dataset rows (JSONL) for PromptSource or FLAN templates')
    .option('--dataset <key>', 'FLAN: which dataset of a templates file (default: the rows file name)')
    .option('--no-truncate', 'PromptSource: do not cut substituted values to 2048 characters')
    .option('--seed <n>', 'seed for template helpers that pick at random (PromptSource choice/random)', int('--seed', 0), 0)
    .option('--examples <n>', 'Positive Examples taken from the first instances of a task that has none', int('--examples', 0), 2);
  addDenoiseOptions(cmd);
  addRunOptions(cmd);
  cmd
    .addHelpText(
      'after',
      `
Candidates are matched to tasks by id (or the UIT reference's task name, the id + ".json"). A
candidate may be {"definition", "positiveExamples": [{"input", "output"}, ...]}: its own examples
replace the task's in its scoring prompts, and in the written task when it is picked. Input files
in the UIT reference's layout (<k>of<N>sample_<task>.json: one Ni-v2 file per candidate, with its
own Definition and Positive Examples) are read as one task per task name whose candidates are the
files; a task with an entry in --candidates takes those instead. A task without candidates is
reported in OUT.errors.jsonl (exit code 6); --strict stops at the first instead. --scoring
reference scores exactly as the reference does (docs/scoring.md). Provenance (every candidate with its mean
cross-entropy, perplexity and rank, and the pick) goes to the sidecar OUT/provenance.jsonl.

Examples:
  $ uit denoise ../shared/data/p3_rendered/imdb_Reviewer_Enjoyment.jsonl --candidates cands.jsonl \\
      --scorer models/uit-tiny -o out/
  $ uit denoise tasks/ --candidates api-cands.jsonl --scorer models/uit-tiny --threshold 40 --top-k 2 -o out.jsonl
  $ uit denoise ppl_annotation/tasks/ --scorer gptj-6b --scoring reference -o picked/`,
    )
    .action(async (input: string[], opts: PipelineCliOptions) => {
      const { runPipelineCommand } = await import('../transfer/pipeline-cli.js');
      await runPipelineCommand('denoise', input, opts);
    });
}
