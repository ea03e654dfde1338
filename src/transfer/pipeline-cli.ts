// The command-line face of the pipeline, shared by `uit convert --method model`, `uit transfer`,
// `uit denoise` and `uit demo`: turning options (declared in pipeline-options.ts) into loaded
// models, a cache and pipeline steps, and the summary (one line on stderr, or --json on stdout).
// The commands import this module only when they run.
import { basename } from 'node:path';
import { DEFAULT_HEAD } from '../formats/api.js';
import { defaultCachePath, openCache, type Cache, type JsonObject } from '../cache/index.js';
import { ExitCode, UitError } from '../errors.js';
import { addStopHook } from '../signals.js';
import { outputLayout } from '../formats/niv2.js';
import { checkOutputFolder } from '../io/staged-dir.js';
import { DEFAULT_SCORING, Scorer } from '../perplexity/index.js';
import { paramsJson, type GenerationParams, type TextGenerator } from '../generator/index.js';
import { openAIGeneratorFromOptions, type OpenAICliOptions } from '../remote/index.js';
import { describeDevice, loadModel, type Model } from '../runtime/index.js';
import { readCandidatesFile } from './candidates-file.js';
import { holdsCandidateFiles } from './reference-layout.js';
import { CandidateSource } from './candidates.js';
import { LocalRangeGenerator } from './local-generator.js';
import { runPipeline, type PipelineCommand, type PipelineOptions, type PipelineSummary } from './pipeline.js';
import { PIPELINE_DEFAULTS, type PipelineCliOptions } from './pipeline-options.js';
import { TRANSFER_STOP, type PromptStyle } from './prompt.js';
import { loadSeeds } from './seeds.js';
import { parseShard } from './shard.js';
import { failureText } from './task-errors.js';

// pipeline-api.ts exports these from here with the rest of the pipeline's command-line face.
export { PIPELINE_DEFAULTS, type PipelineCliOptions } from './pipeline-options.js';

export interface OpenedPipeline {
  options: PipelineOptions;
  cache: Cache;
  close(): Promise<void>;
}

function usage(message: string): never {
  throw new UitError(message, ExitCode.USAGE);
}

/** Loads what a command needs (models, cache, seeds, candidates) and builds its PipelineOptions. */
export async function openPipeline(command: PipelineCommand, input: string[], o: PipelineCliOptions): Promise<OpenedPipeline> {
  if (!o.out) usage(`uit ${command} needs -o OUT (${command === 'transfer' ? 'a .jsonl file' : 'a folder, .json or .jsonl'})`);
  if (command === 'transfer' && !/\.jsonl$/i.test(o.out)) usage('uit transfer writes a candidates JSONL: -o must end in .jsonl');
  if (command !== 'transfer' && o.to !== undefined && o.to !== 'niv2') usage('the model method writes Ni-v2 definitions: use --to niv2');
  const generates = command !== 'denoise';
  const scores = command !== 'transfer';
  const api = generates && o.backend === 'openai';
  if (generates && !api && !o.model) usage(`uit ${command} needs --model DIR (the transfer model), or --backend openai`);
  const scorerDir = o.scorer ?? (api ? undefined : o.model);
  if (scores && !scorerDir) usage(command === 'denoise' ? 'uit denoise needs --scorer DIR (the scoring model)' : '--backend openai needs --scorer DIR (the scoring model)');
  if (command === 'denoise' && !o.candidates && !input.some(holdsCandidateFiles)) {
    usage('uit denoise needs --candidates FILE (JSONL of {"task", "candidates"}, e.g. from uit transfer), or candidate files in the UIT reference\'s layout (<k>of<N>sample_<task>.json)');
  }
  const shard = o.shard === undefined ? undefined : parseShard(o.shard);
  const style: PromptStyle = o.promptStyle ?? 'fewshot';
  const seeds = generates && style === 'fewshot' ? loadSeeds(o.seeds) : undefined;
  const candidates = command === 'denoise' && o.candidates ? await readCandidatesFile(o.candidates) : undefined;
  // an output folder that would be refused is refused now, not after the models load
  if (command !== 'transfer' && outputLayout(o.out) === 'dir') checkOutputFolder(o.out, { replace: o.force === true });

  const cache = openCache(o.cache ?? defaultCachePath());
  const models: Model[] = [];
  let generator: TextGenerator | undefined;
  try {
    const load = async (dir: string): Promise<Model> => {
      const m = await loadModel(dir, { device: o.device, threads: o.threads });
      models.push(m);
      if (o.device !== undefined && o.device !== 'cpu') process.stderr.write(`uit ${command}: ${describeDevice(m.info)}\n`);
      return m;
    };
    const transferModel = generates && !api ? await load(o.model!) : undefined;
    const scorerModel = scores ? (transferModel && sameFolder(scorerDir!, o.model!) ? transferModel : await load(scorerDir!)) : undefined;

    const options: PipelineOptions = {
      command,
      input,
      from: o.from,
      // A long task streams: its scored instances come from the instances read ahead, so read enough.
      read: { rows: o.rows, dataset: o.dataset, truncate: o.truncate, seed: o.seed, head: Math.max(DEFAULT_HEAD, (o.instances ?? PIPELINE_DEFAULTS.instances) + (o.examples ?? 2) + 1) },
      out: o.out,
      to: 'niv2',
      cache,
      candidates,
      shard,
      strict: o.strict,
      force: o.force === true,
      quiet: o.json === true,
    };

    if (generates) {
      const params: GenerationParams = {
        maxNewTokens: o.maxNewTokens ?? PIPELINE_DEFAULTS.maxNewTokens,
        temperature: o.temperature ?? PIPELINE_DEFAULTS.temperature,
        topP: o.topP ?? PIPELINE_DEFAULTS.topP,
        topK: o.sampleTopK,
        repetitionPenalty: o.repetitionPenalty,
        stop: TRANSFER_STOP,
        seed: o.seed,
      };
      let modelCalls: () => number;
      let name: string;
      if (transferModel) {
        const local = await LocalRangeGenerator.create(transferModel);
        generator = local;
        modelCalls = () => local.counts.calls;
        name = basename(transferModel.info.dir);
      } else {
        const remote = openAIGeneratorFromOptions(o as OpenAICliOptions);
        generator = remote;
        name = o.apiModel!;
        modelCalls = () => source.stats.requests;
      }
      const source = new CandidateSource(generator, cache, { name });
      const numCandidates = o.numCandidates ?? PIPELINE_DEFAULTS.numCandidates;
      options.transfer = {
        source,
        style,
        seeds: seeds?.pairs ?? [],
        params,
        numCandidates,
        modelCalls,
        info: {
          backend: transferModel ? 'local' : 'openai',
          model: generator.id,
          name,
          promptStyle: style,
          seeds: seeds ? { digest: seeds.digest, count: seeds.pairs.length } : null,
          params: paramsJson(params),
          candidates: numCandidates,
        },
      };
    }
    if (scorerModel) {
      const scorer = new Scorer(scorerModel, { cache });
      options.denoise = {
        scorer,
        info: { model: await scorer.scorerId(), name: basename(scorerModel.info.dir) },
        examples: o.examples ?? 2,
        selection: {
          scoring: o.scoring ?? DEFAULT_SCORING,
          instances: o.instances ?? PIPELINE_DEFAULTS.instances,
          instanceSeed: o.instanceSeed ?? 0,
          threshold: o.threshold,
          topK: o.topK,
          keepCandidates: o.keepCandidates === true,
        },
      };
    }
    return {
      options,
      cache,
      async close() {
        await generator?.close?.();
        for (const m of models) await m.dispose();
        cache.close();
      },
    };
  } catch (err) {
    await generator?.close?.();
    for (const m of models) await m.dispose();
    cache.close();
    throw err;
  }
}

function sameFolder(a: string, b: string): boolean {
  return a.replace(/[\\/]+$/, '') === b.replace(/[\\/]+$/, '');
}

/** Runs a pipeline command end to end: open, run (recorded as a run in the cache), close, report. */
export async function runPipelineCommand(command: PipelineCommand, input: string[], o: PipelineCliOptions): Promise<PipelineSummary> {
  const opened = await openPipeline(command, input, o);
  let summary: PipelineSummary;
  // Ctrl-C, or SIGTERM from a scheduler preempting the job: the run is recorded as interrupted
  // (what it finished is in the cache; the same command resumes) and the process ends at once
  // (src/signals.ts, which also removes the unfinished outputs).
  const removeHook = addStopHook(() => {
    opened.cache.finishRun('interrupted');
    return `run the same command again to resume from the cache (uit ${command})`;
  });
  try {
    opened.cache.startRun(command, runArgs(input, o));
    try {
      summary = await runPipeline(opened.options);
    } catch (err) {
      opened.cache.finishRun('failed');
      throw err;
    }
    opened.cache.finishRun('ok', {
      tasks: summary.tasks,
      candidates: summary.candidates,
      scores: summary.scores,
      modelCalls: summary.modelCalls,
    } as unknown as JsonObject);
  } finally {
    removeHook();
    await opened.close();
  }
  if (o.json) process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
  else process.stderr.write(summaryLine(summary) + '\n');
  if (summary.tasks.failed > 0) process.exitCode = ExitCode.PARTIAL;
  return summary;
}

function runArgs(input: string[], o: PipelineCliOptions): JsonObject {
  const args: JsonObject = { input };
  for (const [k, v] of Object.entries(o)) {
    if (v === undefined || typeof v === 'function') continue;
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') args[k] = v;
  }
  return args;
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** The one-line summary printed on stderr at the end of a run. */
export function summaryLine(s: PipelineSummary): string {
  const parts = [`${s.command}: ${plural(s.tasks.ok, 'task')} ok`];
  if (s.tasks.failed) parts[0] += `, ${s.tasks.failed} failed`;
  if (s.tasks.filtered) parts[0] += `, ${s.tasks.filtered} filtered`;
  if (s.shard) parts[0] += ` (shard ${s.shard}; ${s.tasks.otherShards} in other shards)`;
  if (s.command !== 'denoise') parts.push(`candidates ${s.candidates.generated} generated, ${s.candidates.cached} cached`);
  if (s.command !== 'transfer') parts.push(`scores ${s.scores.computed} computed, ${s.scores.cached} cached`);
  parts.push(`${plural(s.modelCalls.total, 'model call')}`);
  parts.push(`${s.seconds.toFixed(1)} s`);
  let line = parts.join(' | ') + ` -> ${s.out}`;
  if (s.tasks.shortenedScoring) {
    line += `\n${s.command}: ${plural(s.tasks.shortenedScoring, 'task')} had long inputs shortened to fit the scorer's context, Definitions whole (see shortenedInstances in the provenance)`;
  }
  if (s.tasks.truncatedScoring) {
    line += `\n${s.command}: ${plural(s.tasks.truncatedScoring, 'task')} had scoring prompts that did not fit even so, cut on the left (see truncatedInstances in the provenance)`;
  }
  if (s.errors) line += `\n${s.command}: ${plural(s.tasks.failed, 'task')} failed, see ${s.errors}; first: ${failureText(s.failures[0])}`;
  return line;
}
