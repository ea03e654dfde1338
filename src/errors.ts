// Every failure a user can cause maps to one documented exit code (README "Exit codes").

export const ExitCode = {
  OK: 0,
  /** Unexpected internal error (a bug): please report it. */
  INTERNAL: 1,
  /** Bad command line: unknown option, missing argument. */
  USAGE: 2,
  /** Bad input data: malformed JSON/YAML/template, missing field. Nothing was written. */
  BAD_INPUT: 3,
  /** A model folder or execution provider problem. */
  MODEL: 4,
  /** The cache file is corrupt, foreign, or from a newer uit. */
  CACHE: 5,
  /** A batch finished but some tasks failed; see the errors file. */
  PARTIAL: 6,
  /** A remote API (OpenAI-compatible backend) failed after retries. */
  REMOTE: 7,
  /** An output cannot be written (no permission, read-only or full file system). Nothing was written. */
  OUTPUT: 8,
} as const;
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

export class UitError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCodeValue = ExitCode.INTERNAL,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

export interface InputLocation {
  file: string;
  /** 1-based line number, when the format has lines. */
  line?: number;
  /** A field path such as `Positive Examples[2].output` or `jinja`. */
  field?: string;
}

/** Bad input: the message always starts with `file:line: field:` so editors can jump to it. */
export class InputError extends UitError {
  constructor(
    readonly location: InputLocation,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`${formatLocation(location)}: ${reason}`, ExitCode.BAD_INPUT, options);
  }
}

export function formatLocation(loc: InputLocation): string {
  let s = loc.file;
  if (loc.line !== undefined) s += `:${loc.line}`;
  if (loc.field !== undefined) s += `: ${loc.field}`;
  return s;
}

/** Bad input data (exit code BAD_INPUT), whatever class carries it. */
export function isBadInput(err: unknown): err is UitError {
  return err instanceof UitError && err.exitCode === ExitCode.BAD_INPUT;
}

/**
 * An output (or its temp file, or its folder) cannot be written: the message names the path and
 * the reason in words, never a stack trace.
 */
export class OutputError extends UitError {
  constructor(
    readonly path: string,
    reason: string,
    options?: { cause?: unknown },
  ) {
    super(`${path}: cannot write: ${reason}`, ExitCode.OUTPUT, options);
  }
}

/** A file-system error of writing `path` as an OutputError; anything else is passed through. */
export function outputError(path: string, err: unknown): unknown {
  const e = err as NodeJS.ErrnoException;
  if (err instanceof UitError || typeof e?.code !== 'string') return err;
  const why: Record<string, string> = {
    EACCES: 'permission denied',
    EPERM: 'operation not permitted',
    EROFS: 'read-only file system',
    ENOSPC: 'no space left on the device',
    EDQUOT: 'disk quota exceeded',
    ENOTDIR: 'a part of the path is a file, not a folder',
    EISDIR: 'it is a folder',
    ENOENT: 'no such folder',
    EEXIST: 'something else already exists there',
    ENOTEMPTY: 'a folder that is not empty is in the way (did another run write it meanwhile?)',
    ENAMETOOLONG: 'the name is too long',
    EMFILE: 'too many open files',
    EIO: 'an I/O error',
  };
  return new OutputError(path, why[e.code] ? `${why[e.code]} (${e.code})` : `${e.message}`, { cause: err });
}

export class ModelError extends UitError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, ExitCode.MODEL, options);
  }
}

export class CacheError extends UitError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, ExitCode.CACHE, options);
  }
}
