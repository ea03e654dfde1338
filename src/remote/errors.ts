import { ExitCode, UitError } from '../errors.js';

/** A remote API failed: a 4xx other than 429, an unreadable answer, or no success after retries. */
export class RemoteError extends UitError {
  constructor(
    message: string,
    readonly details: { url: string; status?: number; attempts?: number } ,
    options?: { cause?: unknown },
  ) {
    super(message, ExitCode.REMOTE, options);
  }
}
