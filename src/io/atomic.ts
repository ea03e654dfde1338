// Outputs are written to a temp file beside the target and renamed into place, so a
// failed or killed run never leaves a half-written file where a good one is expected.
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';

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

/** Incremental writes to a temp file; `commit()` renames it into place, `abort()` removes it. */
export class AtomicWriter {
  readonly tempPath: string;
  private fd: number | null;

  constructor(readonly target: string) {
    mkdirSync(dirname(target), { recursive: true });
    this.tempPath = tempPathFor(target);
    this.fd = openSync(this.tempPath, 'w');
  }

  write(data: string | Uint8Array): void {
    if (this.fd === null) throw new Error(`AtomicWriter for ${this.target} is closed`);
    if (typeof data === 'string') writeSync(this.fd, data, null, 'utf8');
    else writeSync(this.fd, data);
  }

  commit(): void {
    if (this.fd === null) throw new Error(`AtomicWriter for ${this.target} is closed`);
    fsyncSync(this.fd);
    closeSync(this.fd);
    this.fd = null;
    renameSync(this.tempPath, this.target);
  }

  abort(): void {
    if (this.fd !== null) {
      closeSync(this.fd);
      this.fd = null;
    }
    rmSync(this.tempPath, { force: true });
  }
}
