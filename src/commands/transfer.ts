// `uit transfer`: the generation half of the pipeline. Samples N candidate Ni-v2 definitions per
// task with a local model or an OpenAI-compatible API and writes them as a candidates JSONL for
// `uit denoise` (docs/pipeline.md). Every sample goes through the cache.
import type { Command } from 'commander';
import { Option } from 'commander';
import { FORMAT_NAMES } from '../formats/names.js';
import { int } from '../cli-values.js';
import { addRunOptions, addTransferOptions, type PipelineCliOptions } from '../transfer/pipeline-options.js';

export function register(program: Command): void {
  const cmd = program
    .command('transfer')
    .summary('sample candidate Ni-v2 definitions for each task with a model')
    .description(
      'Sample candidate Ni-v2 definitions for every task with a local model or an OpenAI-compatible API ' +
        '(the generation half of convert --method model); writes a candidates JSONL for uit denoise.',
    )
    .argument('<input...>', 'data files or folders (format detected from the content; --from to override)')
    .addOption(new Option('--from <format>', 'input format (default: detected)').choices(FORMAT_NAMES))
    .option('-o, --out <file.jsonl>', 'the candidates JSONL: one {"task", "source", "candidates", "transfer"} per task')
    .option('--rows <file>', 'dataset rows (JSONL) for PromptSource or FLAN templates')
    .option('--dataset <key>', 'FLAN: which dataset of a templates file (default: the rows file name)')
    .option('--no-truncate', 'PromptSource: do not cut substituted values to 2048 characters')
    .option('--seed <n>', 'sampling seed (candidate i of a prompt is drawn from the stream (seed, i)); also seeds template helpers', int('--seed', 0), 0);
  addTransferOptions(cmd);
  addRunOptions(cmd);
  cmd
    .addHelpText(
      'after',
      `
Each line of the output holds the task id, its source instruction and the candidates in sample
order; \`uit denoise\` scores and selects them. \`uit transfer\` then \`uit denoise\` gives the
same output as \`uit convert --method model\` with the same options.

Examples:
  $ uit transfer ../shared/data/p3_rendered/imdb_Reviewer_Enjoyment.jsonl --model models/uit-tiny -o cands.jsonl
  $ uit transfer tasks/ --backend openai --base-url http://127.0.0.1:8080/v1 --api-model gpt-j \\
      --scorer models/uit-tiny -o cands.jsonl --num-candidates 4
  $ uit transfer tasks/ --model models/uit-tiny -o part-3.jsonl --shard 3/8 --cache shard-3.sqlite`,
    )
    .action(async (input: string[], opts: PipelineCliOptions) => {
      const { runPipelineCommand } = await import('../transfer/pipeline-cli.js');
      await runPipelineCommand('transfer', input, opts);
    });
}
