// What a decoder graph takes and gives, read from the session's input/output metadata (never
// guessed from config.json when the graph says it): layers, KV heads, head size, KV dtype, and the
// optional inputs (position_ids, use_cache_branch, shared_key_values.*).
import type ort from 'onnxruntime-node';
import { ModelError } from '../errors.js';
import { configNumber, type ModelConfig } from './model-folder.js';

export type GraphKind = 'decoder' | 'fast';
export type KvDtype = 'float32' | 'float16';

export interface GraphSpec {
  kind: GraphKind;
  path: string;
  numLayers: number;
  numKvHeads: number;
  headDim: number;
  kvDtype: KvDtype;
  hasPositionIds: boolean;
  hasUseCacheBranch: boolean;
  pastKeys: string[];
  pastValues: string[];
  /**
   * `shared_key_values.{i}.key|value` [1, heads, shared, head_dim]: a prefix common to every row,
   * passed once (fast graphs made by scripts/export-gptj.py); empty when the graph has none.
   */
  sharedKeys: string[];
  sharedValues: string[];
  hasSharedKv: boolean;
  /** `present.{i}.*` (decoder) or `new_key_values.{i}.*` (fast graph). */
  outKeys: string[];
  outValues: string[];
  /** `logits` (decoder) or `logits_last` (fast graph). */
  mainOutput: string;
  /** The fast graph's `token_logprobs` [batch, num_logprobs], fed by its `num_logprobs` input. */
  logprobsOutput?: string;
  /**
   * The fast graph's `token_argmax` int64 [batch, num_logprobs]: the greedy choice at the positions
   * token_logprobs reads (graphs made before it have none; scripts/add-fast-graphs.py adds it).
   */
  argmaxOutput?: string;
  /**
   * The fast graph's `probs_last` float32 [batch, vocab], the last position's softmax at
   * temperature 1/`inv_temperature` (its scalar float input, which scales every logit the graph
   * returns): the sampling distribution, exponentiated in the graph (graphs made before it have
   * neither; scripts/add-fast-graphs.py adds both).
   */
  probsOutput?: string;
  /**
   * The fast graph's `token_sampled` int64 [batch]: per row, the token where the running sum of
   * probs_last passes u x its total, u from its float64 input `sample_uniform` [batch] (sampler.ts's
   * draw in the graph, with float32 block sums; graphs made before it have neither;
   * scripts/add-fast-graphs.py adds both).
   */
  sampledOutput?: string;
  /** The main output's element type as the graph declares it. */
  mainOutputType: string;
  /** The vocabulary size when the graph declares it statically. */
  vocabSize?: number;
}

type Meta = ort.InferenceSession.ValueMetadata;
type TensorMeta = Meta & { isTensor: true; type: string; shape: ReadonlyArray<number | string> };

function isTensorMeta(m: Meta): m is TensorMeta {
  return m.isTensor;
}

const MAIN_OUTPUT: Record<GraphKind, string> = { decoder: 'logits', fast: 'logits_last' };
const KV_OUT_PREFIX: Record<GraphKind, string> = { decoder: 'present', fast: 'new_key_values' };

/** Reads a graph's contract from session metadata; throws a ModelError naming what does not match. */
export function readGraphSpec(
  kind: GraphKind,
  path: string,
  session: Pick<ort.InferenceSession, 'inputMetadata' | 'outputMetadata'>,
  config: ModelConfig,
): GraphSpec {
  const inputs = new Map<string, TensorMeta>();
  for (const m of session.inputMetadata) if (isTensorMeta(m)) inputs.set(m.name, m);
  const outputs = new Map<string, TensorMeta>();
  for (const m of session.outputMetadata) if (isTensorMeta(m)) outputs.set(m.name, m);
  const contract = "optimum's text-generation-with-past decoder contract";
  const fail = (what: string): never => {
    throw new ModelError(
      `${path}: ${what}; the graph does not follow ${contract} ` +
        `(inputs: ${[...inputs.keys()].slice(0, 8).join(', ')}${inputs.size > 8 ? ', ...' : ''})`,
    );
  };

  for (const name of ['input_ids', 'attention_mask']) {
    const m = inputs.get(name);
    if (!m) fail(`input "${name}" is missing`);
    else if (m.type !== 'int64') fail(`input "${name}" is ${m.type}, expected int64`);
  }
  const pastKeys: string[] = [];
  const pastValues: string[] = [];
  while (inputs.has(`past_key_values.${pastKeys.length}.key`)) {
    const i = pastKeys.length;
    pastKeys.push(`past_key_values.${i}.key`);
    pastValues.push(`past_key_values.${i}.value`);
    if (!inputs.has(pastValues[i])) fail(`input "${pastValues[i]}" is missing`);
  }
  if (pastKeys.length === 0) {
    fail('it has no past_key_values.{i}.key inputs (export it with --task text-generation-with-past)');
  }
  const numLayers = pastKeys.length;
  const first = inputs.get(pastKeys[0])!;
  if (first.type !== 'float32' && first.type !== 'float16') {
    fail(`"${pastKeys[0]}" is ${first.type}; uit supports float32 and float16 KV caches`);
  }
  const kvDtype = first.type as KvDtype;
  if (first.shape.length !== 4) fail(`"${pastKeys[0]}" has rank ${first.shape.length}, expected [batch, heads, past, head_dim]`);

  // Heads and head size are usually static in the graph; fall back to config.json only when symbolic.
  const cfgHeads = configNumber(config, 'num_key_value_heads', 'n_head', 'num_attention_heads', 'n_heads');
  const cfgHidden = configNumber(config, 'n_embd', 'hidden_size', 'd_model');
  const cfgAttnHeads = configNumber(config, 'n_head', 'num_attention_heads', 'n_heads');
  const cfgHeadDim = configNumber(config, 'head_dim') ?? (cfgHidden && cfgAttnHeads ? cfgHidden / cfgAttnHeads : undefined);
  const numKvHeads = typeof first.shape[1] === 'number' ? first.shape[1] : cfgHeads;
  const headDim = typeof first.shape[3] === 'number' ? first.shape[3] : cfgHeadDim;
  if (!numKvHeads || !headDim || !Number.isInteger(numKvHeads) || !Number.isInteger(headDim)) {
    fail(`cannot tell the number of KV heads or the head size from "${pastKeys[0]}" or config.json`);
  }
  for (const name of [...pastKeys, ...pastValues]) {
    const m = inputs.get(name)!;
    if (m.type !== kvDtype) fail(`"${name}" is ${m.type} but "${pastKeys[0]}" is ${kvDtype}`);
  }

  const positionIds = inputs.get('position_ids');
  if (positionIds && positionIds.type !== 'int64') fail(`input "position_ids" is ${positionIds.type}, expected int64`);
  const useCacheBranch = inputs.get('use_cache_branch');
  if (useCacheBranch && useCacheBranch.type !== 'bool') fail(`input "use_cache_branch" is ${useCacheBranch.type}, expected bool`);
  const sharedKeys: string[] = [];
  const sharedValues: string[] = [];
  if (inputs.has('shared_key_values.0.key')) {
    for (let i = 0; i < numLayers; i++) {
      for (const [part, list] of [['key', sharedKeys], ['value', sharedValues]] as const) {
        const name = `shared_key_values.${i}.${part}`;
        const m = inputs.get(name);
        if (!m) fail(`input "${name}" is missing (the graph has shared_key_values.0.key)`);
        else if (m.type !== kvDtype) fail(`"${name}" is ${m.type} but "${pastKeys[0]}" is ${kvDtype}`);
        else if (m.shape.length !== 4 || (typeof m.shape[0] === 'number' && m.shape[0] !== 1)) {
          fail(`"${name}" has shape [${m.shape.join(', ')}], expected [1, heads, shared, head_dim]`);
        }
        list.push(name);
      }
    }
  }
  if (kind === 'fast') {
    const n = inputs.get('num_logprobs');
    if (!n) fail('input "num_logprobs" is missing (a fast graph from an older uit? run scripts/add-fast-graphs.py again)');
    else if (n.type !== 'int64') fail(`input "num_logprobs" is ${n.type}, expected int64`);
  }
  const known = new Set(['input_ids', 'attention_mask', 'position_ids', 'use_cache_branch', ...pastKeys, ...pastValues, ...sharedKeys, ...sharedValues]);
  const invTemperature = kind === 'fast' ? inputs.get('inv_temperature') : undefined;
  if (invTemperature && invTemperature.type !== 'float32') fail(`input "inv_temperature" is ${invTemperature.type}, expected float32`);
  if (kind === 'fast') known.add('num_logprobs');
  if (invTemperature) known.add('inv_temperature');
  const uniform = kind === 'fast' ? inputs.get('sample_uniform') : undefined;
  if (uniform && uniform.type !== 'float64') fail(`input "sample_uniform" is ${uniform.type}, expected float64`);
  if (uniform) known.add('sample_uniform');
  const unknown = [...inputs.keys()].filter((n) => !known.has(n));
  if (unknown.length) fail(`it has inputs uit does not know how to fill: ${unknown.join(', ')}`);

  const mainOutput = MAIN_OUTPUT[kind];
  const main = outputs.get(mainOutput);
  const logprobsOutput = kind === 'fast' ? 'token_logprobs' : undefined;
  for (const name of [mainOutput, logprobsOutput]) {
    if (name && !outputs.has(name)) {
      throw new ModelError(`${path}: output "${name}" is missing (outputs: ${[...outputs.keys()].slice(0, 6).join(', ')}...)`);
    }
  }
  const outKeys: string[] = [];
  const outValues: string[] = [];
  for (let i = 0; i < numLayers; i++) {
    for (const part of ['key', 'value'] as const) {
      const name = `${KV_OUT_PREFIX[kind]}.${i}.${part}`;
      if (!outputs.has(name)) throw new ModelError(`${path}: output "${name}" is missing`);
      (part === 'key' ? outKeys : outValues).push(name);
    }
  }
  const argmax = kind === 'fast' ? outputs.get('token_argmax') : undefined;
  if (argmax && argmax.type !== 'int64') fail(`output "token_argmax" is ${argmax.type}, expected int64`);
  const probs = kind === 'fast' ? outputs.get('probs_last') : undefined;
  if (probs && probs.type !== 'float32') fail(`output "probs_last" is ${probs.type}, expected float32`);
  // An output and the input it reads come together.
  const paired = (output: string, hasOutput: boolean, input: string, hasInput: boolean) => {
    if (hasOutput !== hasInput) fail(`it has ${hasOutput ? `output "${output}" without input "${input}"` : `input "${input}" without output "${output}"`}`);
  };
  paired('probs_last', probs !== undefined, 'inv_temperature', invTemperature !== undefined);
  const sampled = kind === 'fast' ? outputs.get('token_sampled') : undefined;
  if (sampled && sampled.type !== 'int64') fail(`output "token_sampled" is ${sampled.type}, expected int64`);
  paired('token_sampled', sampled !== undefined, 'sample_uniform', uniform !== undefined);
  if (sampled && !probs) fail('it has output "token_sampled" without "probs_last"');
  const lastDim = main!.shape[main!.shape.length - 1];
  return {
    kind,
    path,
    numLayers,
    numKvHeads: numKvHeads!,
    headDim: headDim!,
    kvDtype,
    hasPositionIds: positionIds !== undefined,
    hasUseCacheBranch: useCacheBranch !== undefined,
    pastKeys,
    pastValues,
    sharedKeys,
    sharedValues,
    hasSharedKv: sharedKeys.length > 0,
    outKeys,
    outValues,
    mainOutput,
    logprobsOutput,
    argmaxOutput: argmax ? 'token_argmax' : undefined,
    probsOutput: probs ? 'probs_last' : undefined,
    sampledOutput: sampled ? 'token_sampled' : undefined,
    mainOutputType: main!.type,
    vocabSize: typeof lastDim === 'number' ? lastDim : undefined,
  };
}

/** The fast graphs must agree with the decoder on everything the shared KV cache depends on. */
export function checkCompatible(a: GraphSpec, b: GraphSpec): void {
  const facts = ['numLayers', 'numKvHeads', 'headDim', 'kvDtype', 'hasPositionIds'] as const;
  for (const f of facts) {
    if (a[f] !== b[f]) {
      throw new ModelError(`${b.path} does not match ${a.path}: ${f} is ${String(b[f])} there and ${String(a[f])} here`);
    }
  }
}
