// The command-line face of the OpenAI-compatible backend, shared by every command that
// generates (transfer/convert): `--backend openai --base-url URL --api-model NAME`, the key from
// an environment variable (never from the command line, where it would land in shell history).
import { ExitCode, UitError } from '../errors.js';
import type { OpenAICliOptions } from './cli-options.js';
import { OpenAIGenerator } from './generator.js';
import type { RetryEvent } from './http.js';

// The options themselves live in cli-options.ts (light, for `uit --help`).
export { addOpenAIOptions, type OpenAICliOptions } from './cli-options.js';

/** The generator for `--backend openai`, or a usage error naming what is missing. */
export function openAIGeneratorFromOptions(
  o: OpenAICliOptions,
  env: NodeJS.ProcessEnv = process.env,
  onRetry?: (e: RetryEvent) => void,
): OpenAIGenerator {
  if (!o.baseUrl) throw new UitError('--backend openai needs --base-url (e.g. https://api.openai.com/v1 or http://127.0.0.1:8080/v1)', ExitCode.USAGE);
  if (!o.apiModel) throw new UitError('--backend openai needs --api-model (the model name the API expects)', ExitCode.USAGE);
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(o.apiKeyEnv)) {
    throw new UitError(`--api-key-env ${JSON.stringify(o.apiKeyEnv)} is not an environment variable name`, ExitCode.USAGE);
  }
  return new OpenAIGenerator({
    client: {
      baseUrl: o.baseUrl,
      apiKey: env[o.apiKeyEnv] || undefined,
      apiKeyEnv: o.apiKeyEnv,
      http: { timeoutMs: o.apiTimeout, maxRetries: o.apiRetries, concurrency: o.apiConcurrency, onRetry },
    },
    model: o.apiModel,
    endpoint: o.apiEndpoint,
    samples: o.apiSamples,
  });
}
