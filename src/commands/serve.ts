// `uit serve`: the local model behind an OpenAI-compatible HTTP API (docs/serve.md).
import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { deviceOption, int, positive } from '../cli-values.js';
import { ExitCode, UitError } from '../errors.js';
import type { Device } from '../runtime/index.js';

/**
 * The server's defaults (src/serve: DEFAULT_LIMITS, DEFAULT_MAX_BODY_BYTES), repeated here so that
 * declaring the options does not load the server and the runtime; test/cli/startup.test.ts checks
 * that they agree.
 */
export const SERVE_DEFAULTS = {
  maxTokens: 512,
  maxN: 16,
  maxBodyBytes: 1024 * 1024,
  // DEFAULT_CONNECTION_LIMITS, in seconds
  headersTimeout: 10,
  requestTimeout: 60,
  keepAliveTimeout: 5,
  maxConnections: 256,
} as const;

interface ServeCliOptions {
  model: string;
  modelName?: string;
  host: string;
  port: number;
  apiKeyEnv?: string;
  tokenFile?: string;
  maxTokens: number;
  maxN: number;
  maxBodyBytes: number;
  batchSize: number;
  maxQueue: number;
  headersTimeout: number;
  requestTimeout: number;
  keepAliveTimeout: number;
  maxConnections: number;
  chatTemplate?: string;
  device: Device;
  threads?: number;
  json?: boolean;
  quiet?: boolean;
}

/** The bearer token, from a variable or a file; never from the command line (shell history, ps). */
export function readToken(opts: { apiKeyEnv?: string; tokenFile?: string }): string | undefined {
  if (opts.apiKeyEnv !== undefined) {
    const value = process.env[opts.apiKeyEnv];
    if (value === undefined || value.trim() === '') {
      throw new UitError(`--api-key-env ${opts.apiKeyEnv}: the variable is not set or empty (refusing to start without the token you asked for)`, ExitCode.USAGE);
    }
    return value.trim();
  }
  if (opts.tokenFile !== undefined) {
    let text: string;
    try {
      text = readFileSync(opts.tokenFile, 'utf8');
    } catch (err) {
      throw new UitError(`--token-file ${opts.tokenFile}: ${(err as Error).message}`, ExitCode.USAGE, { cause: err });
    }
    if (text.trim() === '') throw new UitError(`--token-file ${opts.tokenFile} is empty`, ExitCode.USAGE);
    return text.trim();
  }
  return undefined;
}

const ms = (seconds: number): number => Math.max(1, Math.round(seconds * 1000));

export function register(program: Command): void {
  program
    .command('serve')
    .summary('serve a local model over an OpenAI-compatible HTTP API')
    .description('Serve a local ONNX model over an OpenAI-compatible HTTP API (/v1/completions, /v1/chat/completions, /v1/models).')
    .requiredOption('-m, --model <dir>', 'model folder (config.json, tokenizer.json, onnx/model.onnx)')
    .option('--model-name <name>', "the name clients send as 'model' (default: the folder's name)")
    .option('--host <host>', 'address to bind; the default answers this machine only', '127.0.0.1')
    .option('-p, --port <n>', 'port (0 = pick a free one and print it)', int('--port', 0, 65535), 8080)
    .addOption(new Option('--api-key-env <name>', 'require "Authorization: Bearer $NAME" (the token is read from this variable)').conflicts('tokenFile'))
    .option('--token-file <file>', 'require "Authorization: Bearer <token>", the token read from this file')
    .option('--max-tokens <n>', 'largest max_tokens a request may ask for', int('--max-tokens', 1), SERVE_DEFAULTS.maxTokens)
    .option('--max-n <n>', 'largest n (samples per prompt) a request may ask for', int('--max-n', 1), SERVE_DEFAULTS.maxN)
    .option('--max-body-bytes <n>', 'largest request body; larger gets 413', int('--max-body-bytes', 1), SERVE_DEFAULTS.maxBodyBytes)
    .option('--batch-size <n>', 'most rows (prompt x sample) decoded together; a request takes its turns at the model in slices of this many rows', int('--batch-size', 1), 16)
    .option('--max-queue <n>', 'most requests waiting for their turn at the model; more get 503 + Retry-After', int('--max-queue', 1), 64)
    .option('--headers-timeout <s>', 'seconds a client may take to send the request headers; then 408 and the connection closes', positive('--headers-timeout'), SERVE_DEFAULTS.headersTimeout)
    .option('--request-timeout <s>', 'seconds a client may take to send the whole request, body included (generating is not counted)', positive('--request-timeout'), SERVE_DEFAULTS.requestTimeout)
    .option('--keep-alive-timeout <s>', 'seconds an idle keep-alive connection stays open after a response', positive('--keep-alive-timeout'), SERVE_DEFAULTS.keepAliveTimeout)
    .option('--max-connections <n>', 'most open connections; more are closed as they arrive', int('--max-connections', 1), SERVE_DEFAULTS.maxConnections)
    .option('--chat-template <file>', "Jinja chat template for /v1/chat/completions (default: the model folder's, else the plain format)")
    .addOption(deviceOption())
    .option('--threads <n>', 'onnxruntime intra-op threads (default: physical cores)', int('--threads', 1))
    .option('--json', 'print the start line as JSON: {"url", "base_url", "host", "port", "model", "chat_format", "auth"}')
    .option('-q, --quiet', 'no request log on stderr')
    .addHelpText(
      'after',
      `
Requests take turns at the model in slices of --batch-size rows, so a small request does not wait
for all of a big one. Stops gracefully on Ctrl-C or SIGTERM: requests that have not started get 503,
started ones finish.
Streaming ("stream": true), logprobs and echo are answered with a 400 that says so.

Examples:
  $ uit serve --model models/uit-tiny
  $ UIT_TOKEN=s3cret uit serve -m models/uit-tiny --port 9000 --api-key-env UIT_TOKEN
  $ uit serve -m test/fixtures/tiny-gptj --port 0 --json       # a free port, for scripts and tests
  $ curl -s http://127.0.0.1:8080/v1/completions -H 'content-type: application/json' \\
      -d '{"model": "uit-tiny", "prompt": "Definition:", "max_tokens": 32, "seed": 1}'
Any OpenAI SDK works with base_url http://127.0.0.1:8080/v1 (see docs/serve.md).`,
    )
    .action(async (opts: ServeCliOptions) => {
      const apiKey = readToken(opts);
      const [{ isLoopback, startServer }, { describeDevice }] = await Promise.all([import('../serve/index.js'), import('../runtime/index.js')]);
      const log = opts.quiet ? undefined : (line: string) => process.stderr.write(`uit serve: ${line}\n`);
      const server = await startServer({
        model: opts.model,
        modelName: opts.modelName,
        host: opts.host,
        port: opts.port,
        apiKey,
        limits: { maxTokens: opts.maxTokens, maxN: opts.maxN },
        maxBodyBytes: opts.maxBodyBytes,
        batchRows: opts.batchSize,
        maxQueue: opts.maxQueue,
        connections: {
          headersTimeoutMs: ms(opts.headersTimeout),
          requestTimeoutMs: ms(opts.requestTimeout),
          keepAliveTimeoutMs: ms(opts.keepAliveTimeout),
          maxConnections: opts.maxConnections,
        },
        chatTemplate: opts.chatTemplate,
        device: opts.device,
        threads: opts.threads,
        log,
      });
      const info = {
        url: server.url,
        base_url: server.baseUrl,
        host: server.host,
        port: server.port,
        model: server.modelName,
        chat_format: server.chatFormat,
        auth: apiKey !== undefined,
      };
      // The library logs this warning too; --quiet must not hide it.
      if (opts.quiet && !apiKey && !isLoopback(server.host)) {
        process.stderr.write(`uit serve: warning: listening on ${server.host} without a token: anyone who can reach this port can use the model\n`);
      }
      if (opts.json) process.stdout.write(`${JSON.stringify(info)}\n`);
      else {
        if (opts.device !== 'cpu') process.stderr.write(`uit serve: ${describeDevice(server.model.info)}\n`);
        process.stdout.write(
          `uit serve: ${server.modelName} at ${server.baseUrl} (chat: ${server.chatFormat}${apiKey ? '; bearer token required' : ''}); Ctrl-C to stop\n`,
        );
      }

      await new Promise<void>((resolve, reject) => {
        const stop = (signal: NodeJS.Signals) => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          // A second signal means "now": no more waiting for the running batch.
          const force = () => {
            process.stderr.write(`uit serve: stopped at once\n`);
            process.exit(130);
          };
          process.once('SIGINT', force);
          process.once('SIGTERM', force);
          log?.(`${signal}: finishing the running batch, then stopping (again to stop at once)`);
          server.close().then(() => {
            process.off('SIGINT', force);
            process.off('SIGTERM', force);
            log?.('stopped');
            resolve();
          }, reject);
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
    });
}
