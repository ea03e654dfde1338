// config.json against the graph and the tokenizer. uit reads what the graph says (layers, KV
// heads, head size) from the graph itself, but config.json's numbers are used too (the context
// length for prompt fitting, the head count when a graph leaves it symbolic) and a folder whose
// config describes another model is a folder assembled from two exports: it is refused at load,
// with the field, both values and what to do, as a model error (exit code 4).
import { ModelError } from '../errors.js';
import type { UitTokenizer } from '../tokenizer/index.js';
import type { GraphSpec } from './graph-spec.js';
import type { ModelFolder } from './model-folder.js';

/** The config.json names of each fact, as Hugging Face model families spell them. */
const NAMES = {
  layers: ['n_layer', 'num_hidden_layers', 'n_layers'],
  heads: ['n_head', 'num_attention_heads', 'n_heads'],
  kvHeads: ['num_key_value_heads'],
  hidden: ['n_embd', 'hidden_size', 'd_model'],
  headDim: ['head_dim'],
  vocab: ['vocab_size'],
  positions: ['n_positions', 'max_position_embeddings', 'n_ctx'],
} as const;

/** The first of `names` that config.json has, with its value (any JSON value). */
function field(config: Record<string, unknown>, names: readonly string[]): { name: string; value: unknown } | undefined {
  for (const name of names) if (config[name] !== undefined && config[name] !== null) return { name, value: config[name] };
  return undefined;
}

/**
 * Throws a ModelError when config.json's numbers are not positive integers, or disagree with the
 * graph (layers, KV heads, head size, vocabulary) or the tokenizer (ids the model has no row for).
 */
export function checkModelConfig(folder: ModelFolder, spec: GraphSpec, tokenizer: Pick<UitTokenizer, 'vocabSize'>): void {
  const file = folder.files.config;
  const fail = (what: string): never => {
    throw new ModelError(`${file}: ${what}; config.json must describe the exported graph (export the folder again, or fix config.json)`);
  };
  const num = (key: keyof typeof NAMES): { name: string; value: number } | undefined => {
    const f = field(folder.config, NAMES[key]);
    if (f === undefined) return undefined;
    if (typeof f.value !== 'number' || !Number.isInteger(f.value) || f.value < 1) fail(`${f.name} is ${JSON.stringify(f.value)}, not a positive integer`);
    return f as { name: string; value: number };
  };
  const layers = num('layers');
  const heads = num('heads');
  const kvHeads = num('kvHeads');
  const hidden = num('hidden');
  const headDim = num('headDim');
  const vocab = num('vocab');
  num('positions');

  if (layers && layers.value !== spec.numLayers) fail(`${layers.name} is ${layers.value} but ${spec.path} has ${spec.numLayers} layers`);
  const kv = kvHeads ?? heads;
  if (kv && kv.value !== spec.numKvHeads) fail(`${kv.name} is ${kv.value} but ${spec.path} has ${spec.numKvHeads} KV heads`);
  if (heads && kvHeads && heads.value % kvHeads.value !== 0) fail(`${heads.name} ${heads.value} is not a multiple of num_key_value_heads ${kvHeads.value}`);
  if (headDim && headDim.value !== spec.headDim) fail(`head_dim is ${headDim.value} but ${spec.path} has heads of ${spec.headDim}`);
  if (!headDim && hidden && heads) {
    if (hidden.value % heads.value !== 0) fail(`${hidden.name} ${hidden.value} is not a multiple of ${heads.name} ${heads.value}`);
    if (hidden.value / heads.value !== spec.headDim) {
      fail(`${hidden.name} / ${heads.name} is ${hidden.value / heads.value} but ${spec.path} has heads of ${spec.headDim}`);
    }
  }
  if (vocab && spec.vocabSize !== undefined && vocab.value !== spec.vocabSize) fail(`vocab_size is ${vocab.value} but ${spec.path} has ${spec.vocabSize} logits`);
  const modelVocab = spec.vocabSize ?? vocab?.value;
  if (modelVocab !== undefined && tokenizer.vocabSize > modelVocab) {
    throw new ModelError(
      `${folder.files.tokenizer} has ${tokenizer.vocabSize} ids but the model's vocabulary has ${modelVocab}` +
        `${spec.vocabSize === undefined ? ' (config.json vocab_size)' : ''}: this tokenizer is not the model's`,
    );
  }
}
