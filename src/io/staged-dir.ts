// Many output files that appear together or not at all: each is written into a hidden staging
// folder inside the target folder (same filesystem, so renames are atomic and cheap) and moved
// into place by `commit()`; `abort()` removes the staging folder and, if this run created the
// target folder, the folder too. Open files are written one at a time, so thousands of outputs
// do not hold thousands of file descriptors.
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, rmdirSync, writeSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';

export class StagedFile {
  private fd: number | null;

  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true });
    this.fd = openSync(path, 'w');
  }

  write(data: string): void {
    if (this.fd === null) throw new Error(`${this.path} is closed`);
    writeSync(this.fd, data, null, 'utf8');
  }

  close(): void {
    if (this.fd === null) return;
    fsyncSync(this.fd);
    closeSync(this.fd);
    this.fd = null;
  }
}

export class StagedDir {
  readonly target: string;
  private readonly stage: string;
  private readonly createdTarget: boolean;
  private readonly staged = new Set<string>();
  private open: StagedFile | null = null;
  private done = false;

  constructor(target: string) {
    this.target = resolve(target);
    this.createdTarget = !existsSync(this.target);
    mkdirSync(this.target, { recursive: true });
    this.stage = join(this.target, `.uit-staging-${process.pid}-${Date.now().toString(36)}`);
    mkdirSync(this.stage);
  }

  /** Opens `rel` (a path inside the target) for writing; closes the previously opened file. */
  openFile(rel: string): StagedFile {
    const dest = resolve(this.target, rel);
    if (!dest.startsWith(this.target + sep)) throw new Error(`output path escapes ${this.target}: ${rel}`);
    const key = relative(this.target, dest);
    if (this.staged.has(key)) throw new Error(`two outputs would be written to ${dest}`);
    this.open?.close();
    this.staged.add(key);
    this.open = new StagedFile(join(this.stage, key));
    return this.open;
  }

  has(rel: string): boolean {
    return this.staged.has(relative(this.target, resolve(this.target, rel)));
  }

  writeFile(rel: string, data: string): void {
    const f = this.openFile(rel);
    f.write(data);
    f.close();
  }

  /** The paths (inside the target) that commit() will create or replace. */
  get files(): string[] {
    return [...this.staged].map((k) => join(this.target, k));
  }

  commit(): void {
    if (this.done) return;
    this.open?.close();
    for (const key of this.staged) {
      const dest = join(this.target, key);
      mkdirSync(dirname(dest), { recursive: true });
      renameSync(join(this.stage, key), dest);
    }
    rmSync(this.stage, { recursive: true, force: true });
    this.done = true;
  }

  abort(): void {
    if (this.done) return;
    try {
      this.open?.close();
    } catch {
      // the file is being thrown away anyway
    }
    rmSync(this.stage, { recursive: true, force: true });
    if (this.createdTarget) {
      try {
        if (readdirSync(this.target).length === 0) rmdirSync(this.target);
      } catch {
        // leave a folder that someone else wrote into
      }
    }
    this.done = true;
  }
}
