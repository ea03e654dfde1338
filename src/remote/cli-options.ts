// The OpenAI-compatible backend's command-line options (`--backend openai --base-url URL
// --api-model NAME ...`), declared without loading the client (zod, HTTP): commands declare their
// options at every start, `uit --help` included. options.ts builds the generator from them.
import { Option, type Command } from 'commander';
import { int } from '../cli-values.js';
import type { ApiEndpoint } from './generator.js';

export interface OpenAICliOptions {
  backend?: string;
  baseUrl?: string;
  apiModel?: string;
  apiKeyEnv: string;
  apiEndpoint: ApiEndpoint;
  apiTimeout: number;
  apiRetries: number;
  apiConcurrency: number;
  apiSamples: 'auto' | 'repeat';
}

/** Adds the API options to a command. `--backend` is added too unless the command has its own. */
export function addOpenAIOptions(cmd: Command, opts: { backendOption?: boolean } = {}): Command {
  if (opts.backendOption !== false) {
    cmd.addOption(new Option('--backend <name>', 'where candidate instructions come from').choices(['local', 'openai']).default('local'));
  }
  return cmd
    .option('--base-url <url>', 'OpenAI-compatible API base URL, with the version prefix (e.g. http://127.0.0.1:8080/v1)')
    .option('--api-model <name>', 'model name sent to the API')
    .option('--api-key-env <name>', 'environment variable holding the API key (sent as a bearer token)', 'OPENAI_API_KEY')
    .addOption(new Option('--api-endpoint <kind>', 'completions (prompt in, text out) or chat (prompt as one user message)').choices(['completions', 'chat']).default('completions'))
    .option('--api-timeout <ms>', 'timeout of one API request in milliseconds', int('--api-timeout', 1), 60_000)
    .option('--api-retries <n>', 'retries on 429, 5xx, timeouts and network errors', int('--api-retries', 0), 4)
    .option('--api-concurrency <n>', 'API requests in flight at once', int('--api-concurrency', 1), 4)
    .addOption(new Option('--api-samples <mode>', 'auto: ask for n samples per request, falling back to one call per sample; repeat: always one call per sample').choices(['auto', 'repeat']).default('auto'));
}
