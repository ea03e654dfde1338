// The `uit` command line: one file per command under src/commands/.
import { Command, CommanderError } from 'commander';
import { createRequire } from 'node:module';
import { registerCommands } from './commands/index.js';
import { ExitCode, UitError } from './errors.js';
import { installStopHandlers } from './signals.js';

const require = createRequire(import.meta.url);
const pkg = require('../package.json') as { version: string };

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('uit')
    .description(
      'Offline Unified Instruction Tuning: convert instruction-tuning data (Ni-v2, PromptSource/P3, ' +
        'FLAN, CrossFit, Alpaca, self-instruct, ShareGPT) to one format with local ONNX models, ' +
        'perplexity denoising and a SQLite cache.',
    )
    .version(pkg.version)
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerCommands(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  // `uit ... | head`: the reader went away; stop quietly, as command-line tools do.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(ExitCode.OK);
    throw err;
  });
  installStopHandlers();
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    process.exitCode = reportError(err);
  }
}

/** Prints a user-facing error and returns the exit code. */
export function reportError(err: unknown): number {
  if (err instanceof CommanderError) {
    // --help and --version exit "with an error" of code 0; commander already printed.
    if (err.exitCode === 0) return ExitCode.OK;
    return ExitCode.USAGE;
  }
  if (err instanceof UitError) {
    process.stderr.write(`uit: ${err.message}\n`);
    return err.exitCode;
  }
  const e = err as Error;
  process.stderr.write(`uit: internal error: ${e?.stack ?? String(err)}\n`);
  return ExitCode.INTERNAL;
}
