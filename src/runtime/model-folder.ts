// A model folder in the Hugging Face / optimum / transformers.js layout. This module only looks at
// files; what the graphs accept is checked from the sessions' metadata (graph-spec.ts).
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ModelError } from '../errors.js';

/** Decoder graphs in optimum's text-generation-with-past layout, in order of preference. */
const DECODER_GRAPHS = ['model.onnx', 'decoder_model_merged.onnx'];
/**
 * The fast graph (scripts/export-gptj.py, or scripts/add-fast-graphs.py for other exports): only the
 * new KV entries and the needed logits / log-probs leave it. (model.gen.onnx and model.score.onnx,
 * the two fast graphs of earlier versions, are no longer read: such a folder runs on model.onnx until
 * add-fast-graphs.py adds model.fast.onnx.)
 */
const FAST_GRAPH = 'model.fast.onnx';

export type ModelConfig = Record<string, unknown>;

export interface ModelFolder {
  /** Absolute path of the folder. */
  dir: string;
  config: ModelConfig;
  /** `config.json`'s model_type, e.g. "gptj", "gpt2", "llama". */
  modelType: string;
  files: {
    config: string;
    tokenizer: string;
    tokenizerConfig?: string;
    generationConfig?: string;
    /** The optimum decoder (slow path: full logits and whole `present` KV come out). */
    decoder?: string;
    /** The fast graph: `logits_last` + `token_logprobs` + `new_key_values.*`, for generation and scoring. */
    fast?: string;
    /** Other files in onnx/ (external data such as model.onnx_data; not parity.json), sorted. */
    externalData: string[];
  };
}

function readConfig(file: string): ModelConfig {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ModelError(`${file}: not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ModelError(`${file}: expected a JSON object`);
  }
  return value as ModelConfig;
}

/**
 * Checks that `dir` looks like a model folder and lists its files. Throws a ModelError that names
 * the folder and the first missing piece.
 */
export function inspectModelFolder(dirArg: string): ModelFolder {
  const dir = resolve(dirArg);
  if (!existsSync(dir)) throw new ModelError(`model folder ${dirArg} does not exist`);
  if (!statSync(dir).isDirectory()) throw new ModelError(`model folder ${dirArg} is not a directory`);
  const file = (name: string): string | undefined => (existsSync(join(dir, name)) ? join(dir, name) : undefined);

  const config = file('config.json');
  if (!config) {
    throw new ModelError(
      `${dirArg} is not a model folder: config.json is missing (expected the Hugging Face layout: ` +
        'config.json, tokenizer.json, tokenizer_config.json, onnx/model.onnx)',
    );
  }
  const tokenizer = file('tokenizer.json');
  if (!tokenizer) throw new ModelError(`${dirArg}: tokenizer.json is missing`);

  // transformers.js keeps the graphs in onnx/; optimum-cli writes model.onnx next to config.json.
  const sub = join(dir, 'onnx');
  const nested = existsSync(sub) && statSync(sub).isDirectory();
  const topLevel = !nested && DECODER_GRAPHS.some((n) => existsSync(join(dir, n)));
  if (!nested && !topLevel) {
    throw new ModelError(`${dirArg}: the onnx/ folder is missing (expected onnx/model.onnx)`);
  }
  const onnxDir = nested ? sub : dir;
  const onnxFiles = readdirSync(onnxDir).sort();
  const decoderName = DECODER_GRAPHS.find((n) => onnxFiles.includes(n));
  const fast = onnxFiles.includes(FAST_GRAPH) ? join(onnxDir, FAST_GRAPH) : undefined;
  if (!decoderName && !fast) {
    const found = onnxFiles.filter((n) => n.endsWith('.onnx'));
    throw new ModelError(
      `${dirArg}: onnx/model.onnx is missing` +
        (found.length ? ` (found ${found.join(', ')}; uit reads model.onnx and model.fast.onnx)` : ''),
    );
  }
  // External data: in onnx/, every other file (a per-tensor export names files after tensors); at
  // the top level, only files named like ONNX data (the folder also holds tokenizer files, docs...).
  const isData = (n: string) =>
    nested ? !/\.(onnx|json|md|txt)$/.test(n) : /\.onnx[._]?data$|\.onnx_data_\d+$/.test(n);
  const externalData = onnxFiles
    .filter((n) => isData(n) && !n.startsWith('.') && statSync(join(onnxDir, n)).isFile())
    .map((n) => join(onnxDir, n));

  const cfg = readConfig(config);
  return {
    dir,
    config: cfg,
    modelType: typeof cfg.model_type === 'string' ? cfg.model_type : 'unknown',
    files: {
      config,
      tokenizer,
      tokenizerConfig: file('tokenizer_config.json'),
      generationConfig: file('generation_config.json'),
      decoder: decoderName ? join(onnxDir, decoderName) : undefined,
      fast,
      externalData,
    },
  };
}

/** A number from config.json under the first of several names (models name the same fact differently). */
export function configNumber(config: ModelConfig, ...names: string[]): number | undefined {
  for (const n of names) {
    const v = config[n];
    if (typeof v === 'number' && Number.isFinite(v)) return v;
  }
  return undefined;
}
