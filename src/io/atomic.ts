// Outputs are written to a temp file beside the target and renamed into place, so a
// failed or killed run never leaves a half-written file where a good one is expected.
// A file-system failure (no permission, read-only or full disk) is an OutputError naming the
// target, never a stack trace; temp files of dead processes for the same target are removed first.
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { outputError } from '../errors.js';
import { trackTemp, untrackTemp } from './live-temps.js';
import { removeStaleTemps } from './stale.js';

// A per-process counter after the time: two writers for one target in the same millisecond
// must not share (and truncate) one temp file.
let tempSeq = 0;

function tempPathFor(target: string): string {
  const stamp = `${Date.now().toString(36)}${(tempSeq++).toString(36)}`;
  return join(dirname(target), `.${basename(target)}.${process.pid}.${stamp}.tmp`);
}

export function writeFileAtomic(target: string, data: string | Uint8Array): void {
  const w = new AtomicWriter(target);
  try {
    w.write(data);
    w.commit();
  } catch (err) {
    w.abort();
    throw err;
  }
}

/** Runs a file-system step of writing `target`, turning its failure into an OutputError. */
export function writing<T>(target: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw outputError(target, err);
  }
}

/** Incremental writes to a temp file; `commit()` renames it into place, `abort()` removes it. */
export class AtomicWriter {
  readonly tempPath: string;
  private fd: number | null;

  constructor(readonly target: string) {
    writing(target, () => {
      if (statSync(target, { throwIfNoEntry: false })?.isDirectory()) {
        throw Object.assign(new Error('is a folder'), { code: 'EISDIR' });
      }
      mkdirSync(dirname(target), { recursive: true });
    });
    writing(target, () => removeStaleTemps([target]));
    this.tempPath = tempPathFor(target);
    this.fd = writing(target, () => openSync(this.tempPath, 'w'));
    trackTemp(this.tempPath);
  }

  write(data: string | Uint8Array): void {
    if (this.fd === null) throw new Error(`AtomicWriter for ${this.target} is closed`);
    const fd = this.fd;
    writing(this.target, () => (typeof data === 'string' ? writeSync(fd, data, null, 'utf8') : writeSync(fd, data)));
  }

  commit(): void {
    if (this.fd === null) throw new Error(`AtomicWriter for ${this.target} is closed`);
    const fd = this.fd;
    try {
      writing(this.target, () => {
        fsyncSync(fd);
        closeSync(fd);
        this.fd = null;
        renameSync(this.tempPath, this.target);
      });
    } catch (err) {
      this.abort();
      throw err;
    }
    untrackTemp(this.tempPath);
  }

  abort(): void {
    if (this.fd !== null) {
      try {
        closeSync(this.fd);
      } catch {
        // the file is being thrown away anyway
      }
      this.fd = null;
    }
    rmSync(this.tempPath, { force: true });
    untrackTemp(this.tempPath);
  }
}
