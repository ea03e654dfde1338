// `uit generate`: try a model folder: continue prompts with greedy or sampled decoding.
import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { deviceOption, float, int } from '../cli-values.js';
import { ExitCode, InputError, UitError } from '../errors.js';
import { writeFileAtomic } from '../io/atomic.js';
// zod, the progress bar and the runtime (onnxruntime-node) load when the command runs.
import type { Device, GenerateRequest, GenerateResult } from '../runtime/index.js';

interface GenerateCliOptions {
  model: string;
  input?: string;
  output?: string;
  greedy?: boolean;
  maxNewTokens: number;
  temperature: number;
  topK?: number;
  topP?: number;
  repetitionPenalty?: number;
  seed: number;
  numSamples: number;
  stop: string[];
  device: Device;
  threads?: number;
  batchSize: number;
  draftTokens: number;
  json?: boolean;
}

/** One request per line of a JSONL file: {"prompt": "...", "num_samples"?: N}. */
export async function readPromptsJsonl(file: string, defaultSamples: number): Promise<GenerateRequest[]> {
  const { z } = await import('zod');
  const lineSchema = z.object({ prompt: z.string(), num_samples: z.number().int().min(1).optional() });
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new InputError({ file }, `cannot read: ${(err as Error).message}`, { cause: err });
  }
  const requests: GenerateRequest[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      throw new InputError({ file, line: i + 1 }, `not valid JSON: ${(err as Error).message}`);
    }
    const parsed = lineSchema.safeParse(value);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new InputError({ file, line: i + 1, field: issue.path.join('.') || undefined }, `expected {"prompt": string, "num_samples"?: integer}: ${issue.message}`);
    }
    requests.push({ prompt: parsed.data.prompt, numSamples: parsed.data.num_samples ?? defaultSamples });
  });
  if (requests.length === 0) throw new InputError({ file }, 'no prompts (expected one {"prompt": ...} per line)');
  return requests;
}

function formatPlain(result: GenerateResult): string {
  const texts = result.outputs.flatMap((o) => o.samples.map((s) => s.text));
  if (texts.length === 1) return `${texts[0]}\n`;
  return texts.map((t) => `${t}\n`).join('----\n');
}

export function register(program: Command): void {
  program
    .command('generate')
    .summary('continue prompts with a local ONNX model')
    .description('Continue prompts with a local ONNX model: greedy or sampled (temperature, top-k, top-p, repetition penalty), KV-cached, batched, seeded.')
    .argument('[prompt...]', 'prompt text (or use --input)')
    .requiredOption('-m, --model <dir>', 'model folder (config.json, tokenizer.json, onnx/model.onnx)')
    .option('-i, --input <file>', 'JSONL file of prompts: one {"prompt": "...", "num_samples"?: N} per line')
    .option('-o, --output <file>', 'write the output to a file (atomically) instead of stdout')
    .option('--greedy', 'argmax decoding (ignores temperature, top-k, top-p)')
    .option('-n, --max-new-tokens <n>', 'most tokens to generate per sample', int('--max-new-tokens', 1), 64)
    .option('-t, --temperature <t>', 'sampling temperature (0, or under 1e-5, = greedy)', float('--temperature', (n) => n >= 0, '>= 0'), 1)
    .option('--top-k <k>', 'sample from the k most likely tokens', int('--top-k', 1))
    .option('--top-p <p>', 'nucleus sampling: the smallest set of tokens with probability >= p', float('--top-p', (n) => n > 0 && n <= 1, 'in (0, 1]'))
    .option('--repetition-penalty <r>', "CTRL's repetition penalty (1 = off)", float('--repetition-penalty', (n) => n > 0, '> 0'))
    .option('-s, --seed <n>', 'seed: sample i of a prompt is the same text at any batch size', int('--seed', 0), 0)
    .option('--num-samples <n>', 'samples per prompt (the prompt is run once, its KV cache copied)', int('--num-samples', 1), 1)
    .option('--stop <text>', 'stop before this text (repeatable; escapes like \\n are understood)', (v: string, prev: string[]) => [...prev, unescape(v)], [] as string[])
    .addOption(deviceOption())
    .option('--threads <n>', 'onnxruntime intra-op threads (default: physical cores)', int('--threads', 1))
    .option('--batch-size <n>', 'most rows (prompt x sample) decoded together', int('--batch-size', 1), 16)
    .option('--draft-tokens <n>', 'greedy, one row: tokens drafted per step by prompt lookup and verified in one forward (same text, fewer forwards; 0 = off)', int('--draft-tokens', 0), 8)
    .option('--json', 'structured output: prompt index, sample index, text, tokens, finish reason, timings')
    .addHelpText(
      'after',
      `
Plain output is the generated text only (no prompt echo); several outputs are separated by "----" lines.

Examples:
  $ uit generate --model models/uit-tiny --greedy -n 32 "Definition: In this task, you are given"
  $ uit generate -m models/uit-tiny --num-samples 4 --temperature 0.8 --top-p 0.95 --seed 1 "Input: 2+2"
  $ uit generate -m models/uit-tiny --input prompts.jsonl --stop '\\n\\n' --json > out.json`,
    )
    .action(async (promptArgs: string[], opts: GenerateCliOptions) => {
      let requests: GenerateRequest[];
      if (opts.input && promptArgs.length) throw new UitError('give either prompt text or --input, not both', ExitCode.USAGE);
      if (opts.input) requests = await readPromptsJsonl(opts.input, opts.numSamples);
      else if (promptArgs.length) requests = [{ prompt: promptArgs.join(' '), numSamples: opts.numSamples }];
      else throw new UitError('no prompt: give prompt text or --input prompts.jsonl', ExitCode.USAGE);

      const [{ describeDevice, generate, loadModel }, { createProgress }] = await Promise.all([import('../runtime/index.js'), import('../progress.js')]);
      const model = await loadModel(opts.model, { device: opts.device, threads: opts.threads });
      try {
        // Also with --json (whose "model" object carries the device too): stderr is not the data.
        if (opts.device !== 'cpu') process.stderr.write(`uit: ${describeDevice(model.info)}\n`);
        const rows = requests.reduce((n, r) => n + (r.numSamples ?? 1), 0);
        const progress = createProgress({ label: 'generate', total: rows * opts.maxNewTokens, quiet: opts.json, extraFormat: 'tokens' });
        let result: GenerateResult;
        try {
          result = await generate(model, requests, {
            maxNewTokens: opts.maxNewTokens,
            greedy: opts.greedy,
            temperature: opts.temperature,
            topK: opts.topK,
            topP: opts.topP,
            repetitionPenalty: opts.repetitionPenalty,
            seed: opts.seed,
            stop: opts.stop,
            batchSize: opts.batchSize,
            draftTokens: opts.draftTokens,
            onTokens: (n) => progress.tick(n),
          });
        } finally {
          progress.stop();
        }
        const out = opts.json ? `${JSON.stringify(toJson(model.info, result), null, 2)}\n` : formatPlain(result);
        if (opts.output) writeFileAtomic(opts.output, out);
        else process.stdout.write(out);
      } finally {
        await model.dispose();
      }
    });
}

function toJson(info: { dir: string; device: string; fastGeneration: boolean; adapter?: { description: string; software: boolean } }, result: GenerateResult) {
  const t = result.timings;
  return {
    model: {
      dir: info.dir,
      device: info.device,
      ...(info.adapter ? { adapter: info.adapter.description, software_adapter: info.adapter.software } : {}),
      fast_generation: info.fastGeneration,
    },
    results: result.outputs.flatMap((o, p) =>
      o.samples.map((s) => ({
        prompt_index: p,
        sample_index: s.index,
        text: s.text,
        tokens: s.tokenIds,
        num_tokens: s.tokenIds.length,
        prompt_tokens: o.promptTokens,
        finish_reason: s.finishReason,
      })),
    ),
    timings: {
      prefill_ms: round(t.prefillMs),
      decode_ms: round(t.decodeMs),
      total_ms: round(t.totalMs),
      prompt_tokens: t.promptTokens,
      new_tokens: t.newTokens,
      decode_forwards: t.steps,
      drafted_tokens: t.draftedTokens,
      accepted_drafts: t.acceptedTokens,
      new_tokens_per_s: t.prefillMs + t.decodeMs > 0 ? round((t.newTokens * 1000) / (t.prefillMs + t.decodeMs)) : null,
    },
  };
}

function round(x: number): number {
  return Math.round(x * 10) / 10;
}

/** `\n`, `\t` and `\\` in --stop values, so a blank line can be given as '\n\n'. */
function unescape(s: string): string {
  return s.replace(/\\(n|t|\\)/g, (_, c: string) => (c === 'n' ? '\n' : c === 't' ? '\t' : '\\'));
}
