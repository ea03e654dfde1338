// The pipeline commands' options (`uit convert --method model`, `uit transfer`, `uit denoise`,
// `uit demo`), declared without loading what runs them: every `uit` start declares them, `--help`
// included, so this module imports nothing heavier than commander (pipeline-cli.ts runs them).
import { Option, type Command } from 'commander';
import { deviceOption, float, int } from '../cli-values.js';
import { DEFAULT_CACHE_HELP, defaultCachePath } from '../cache/location.js';
import { DEFAULT_INSTANCES, DEFAULT_SCORING, SCORING_MODES, type ScoringMode } from '../perplexity/defaults.js';
import { addOpenAIOptions, type OpenAICliOptions } from '../remote/cli-options.js';
import type { Device } from '../runtime/index.js';
import type { PromptStyle } from './prompt.js';

/** Defaults of the model method (docs/pipeline.md). */
export const PIPELINE_DEFAULTS = {
  numCandidates: 8,
  temperature: 0.7,
  topP: 0.95,
  maxNewTokens: 128,
  instances: DEFAULT_INSTANCES,
} as const;

export interface PipelineCliOptions extends Partial<OpenAICliOptions> {
  // reading
  from?: string;
  rows?: string;
  dataset?: string;
  truncate?: boolean;
  seed: number;
  out?: string;
  to?: string;
  examples?: number;
  // transfer
  model?: string;
  promptStyle?: PromptStyle;
  seeds?: string;
  numCandidates?: number;
  temperature?: number;
  topP?: number;
  sampleTopK?: number;
  maxNewTokens?: number;
  repetitionPenalty?: number;
  // denoise
  scorer?: string;
  candidates?: string;
  instances?: number;
  instanceSeed?: number;
  scoring?: ScoringMode;
  threshold?: number;
  topK?: number;
  keepCandidates?: boolean;
  // run
  cache?: string;
  shard?: string;
  strict?: boolean;
  /** Replace an existing output folder (convert, denoise, demo). */
  force?: boolean;
  json?: boolean;
  device?: Device;
  threads?: number;
}

/** Options of the generation side (convert --method model, transfer). */
export function addTransferOptions(cmd: Command, { modelRequired = false } = {}): Command {
  cmd
    .option('--model <dir>', `transfer model folder (a GPT-J or any optimum decoder export)${modelRequired ? '' : '; needed with --method model unless --backend openai'}`)
    .addOption(new Option('--prompt-style <style>', 'fewshot: seed pairs then the task; pair: the bare pair a fine-tuned model takes').choices(['fewshot', 'pair']).default('fewshot'))
    .option('--seeds <file>', 'few-shot seed pairs, a JSON array of {"source", "definition"} (default: the shipped src/transfer/seed-pairs.json)')
    .option('--num-candidates <n>', 'candidate definitions sampled per task', int('--num-candidates', 1), PIPELINE_DEFAULTS.numCandidates)
    .option('--temperature <t>', 'sampling temperature (0, or under 1e-5, = greedy)', float('--temperature', (n) => n >= 0, '>= 0'), PIPELINE_DEFAULTS.temperature)
    .option('--top-p <p>', 'nucleus sampling', float('--top-p', (n) => n > 0 && n <= 1, 'in (0, 1]'), PIPELINE_DEFAULTS.topP)
    .option('--sample-top-k <k>', 'sample from the k most likely tokens (off by default)', int('--sample-top-k', 1))
    .option('--repetition-penalty <r>', "CTRL's repetition penalty (off by default)", float('--repetition-penalty', (n) => n > 0, '> 0'))
    .option('--max-new-tokens <n>', 'longest candidate, in tokens (a candidate also ends at a blank line)', int('--max-new-tokens', 1), PIPELINE_DEFAULTS.maxNewTokens);
  return addOpenAIOptions(cmd);
}

/** Options of the scoring side (convert --method model, denoise). */
export function addDenoiseOptions(cmd: Command): Command {
  return cmd
    .option('--scorer <dir>', 'scoring model folder (default: the transfer model)')
    .option('--instances <m>', 'instances scored per candidate (a seeded shuffle of the task\'s instances)', int('--instances', 1), PIPELINE_DEFAULTS.instances)
    .option('--instance-seed <n>', 'seed of the instance shuffle', int('--instance-seed', 0), 0)
    .addOption(scoringOption())
    .option('--threshold <ppl>', 'drop candidates whose perplexity is above this (a task left with none is not written)', float('--threshold', (n) => n > 0, '> 0'))
    .option('--top-k <k>', 'keep the k best candidates as the task\'s Definition list (default 1)', int('--top-k', 1))
    .option('--keep-candidates', 'write every candidate into the Definition list, the kept ones first');
}

/** Options every pipeline command has. */
export function addRunOptions(cmd: Command, { json = true } = {}): Command {
  cmd
    .option('--cache <file>', `SQLite cache of generations and scores (default: ${DEFAULT_CACHE_HELP}; here ${defaultCachePath().replace(process.env.HOME ?? '\0', '~')})`)
    .option('--shard <k/n>', 'process only shard k of n (0-based; by a hash of the task id)')
    .option('--strict', 'stop at the first bad task (exit code 3) and write nothing')
    .addOption(deviceOption())
    .option('--threads <n>', 'onnxruntime intra-op threads (default: physical cores)', int('--threads', 1));
  return json ? cmd.option('--json', 'print the summary as JSON on stdout') : cmd;
}

/** `--scoring`: the UIT recipe of uit (default) or the UIT reference's exactly (docs/scoring.md). */
export function scoringOption(): Option {
  return new Option('--scoring <mode>', "uit: this tool's recipe; reference: the UIT reference implementation's, exactly (docs/scoring.md)")
    .choices(SCORING_MODES as string[])
    .default(DEFAULT_SCORING);
}
