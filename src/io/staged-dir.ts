// A folder output that appears whole or not at all, never mixed with older files: every file (the
// sidecars too) is written into a hidden staging folder on the same file system (beside a new
// target, so that commit() is one rename; inside an existing one, which may be a mount point), and
// `abort()` removes it. Open files are written one at a time, so thousands of outputs do not hold
// thousands of file descriptors.
//
// An existing folder that holds anything is refused, unless `replace` is set and it is a uit output
// (it has provenance.jsonl): commit() then moves its old entries aside, moves the new ones in and
// removes the old ones, so it holds exactly the new output (a run killed in between is put right by
// the next run into it, see stale.ts). An existing folder is checked for write access at once, so
// a read-only output fails before the work, not after it.
import { accessSync, closeSync, constants, fsyncSync, lstatSync, mkdirSync, openSync, readdirSync, realpathSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { ExitCode, InputError, UitError } from '../errors.js';
import { writing } from './atomic.js';
import { trackTemp, untrackTemp } from './live-temps.js';
import { removeStaleTemps } from './stale.js';

/** The file every uit folder output holds; --force replaces only folders that have it. */
export const OUTPUT_MARKER = 'provenance.jsonl';

export class StagedFile {
  private fd: number | null;

  constructor(
    readonly path: string,
    private readonly label: string,
  ) {
    this.fd = writing(label, () => {
      mkdirSync(dirname(path), { recursive: true });
      return openSync(path, 'w');
    });
  }

  write(data: string): void {
    if (this.fd === null) throw new Error(`${this.path} is closed`);
    const fd = this.fd;
    writing(this.label, () => writeSync(fd, data, null, 'utf8'));
  }

  close(): void {
    if (this.fd === null) return;
    const fd = this.fd;
    this.fd = null;
    writing(this.label, () => {
      fsyncSync(fd);
      closeSync(fd);
    });
  }
}

export interface StagedDirOptions {
  /** Replace an existing uit output folder at commit (`--force`); without it, a non-empty folder is refused. */
  replace?: boolean;
  /** The file that marks a folder as this kind of uit output, which `replace` may replace (default OUTPUT_MARKER). */
  marker?: string;
}

export class StagedDir {
  readonly target: string;
  private readonly stage: string;
  /** The target existed: the stage is inside it and commit() moves entries. */
  private readonly existed: boolean;
  private readonly staged = new Set<string>();
  private open: StagedFile | null = null;
  private done = false;

  constructor(target: string, opts: StagedDirOptions = {}) {
    let t = resolve(target);
    // a symlink to a folder: the folder it points to is the output
    if (writing(target, () => lstatSync(t, { throwIfNoEntry: false }))?.isSymbolicLink()) t = writing(target, () => realpathSync(t));
    this.target = t;
    writing(target, () => removeStaleTemps([t]));
    this.existed = checkTarget(target, t, opts.replace === true, opts.marker);
    const id = `${process.pid}-${Date.now().toString(36)}`;
    if (this.existed) {
      writing(target, () => accessSync(t, constants.W_OK));
      this.stage = join(t, `.uit-staging-${id}`);
    } else {
      writing(target, () => mkdirSync(dirname(t), { recursive: true }));
      this.stage = join(dirname(t), `.${basename(t)}.uit-staging-${id}`);
    }
    writing(target, () => mkdirSync(this.stage));
    trackTemp(this.stage);
  }

  /** Where `rel` (a path inside the target) is written until commit. */
  stagedPath(rel: string): string {
    return join(this.stage, this.key(rel));
  }

  private key(rel: string): string {
    const dest = resolve(this.target, rel);
    if (!dest.startsWith(this.target + sep)) {
      throw new UitError(`output name ${JSON.stringify(rel)} would leave the output folder ${this.target}`, ExitCode.BAD_INPUT);
    }
    return relative(this.target, dest);
  }

  /** Opens `rel` (a path inside the target) for writing; closes the previously opened file. */
  openFile(rel: string): StagedFile {
    const key = this.key(rel);
    if (this.staged.has(key)) throw new InputError({ file: join(this.target, key) }, 'two outputs would be written to this file');
    this.open?.close();
    this.staged.add(key);
    this.open = new StagedFile(join(this.stage, key), join(this.target, key));
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

  /** The paths (inside the target) that commit() will create. */
  get files(): string[] {
    return [...this.staged].map((k) => join(this.target, k));
  }

  commit(): void {
    if (this.done) return;
    this.open?.close();
    const t = this.target;
    writing(t, () => {
      if (!this.existed) {
        renameSync(this.stage, t);
        return;
      }
      // old entries aside (a hidden folder the next run removes if this one dies), new ones in
      const stageName = basename(this.stage);
      const old = join(t, stageName.replace('.uit-staging-', '.uit-old-'));
      mkdirSync(old);
      for (const e of readdirSync(t)) if (e !== stageName && e !== basename(old)) renameSync(join(t, e), join(old, e));
      for (const e of readdirSync(this.stage)) renameSync(join(this.stage, e), join(t, e));
      rmSync(this.stage, { recursive: true, force: true });
      rmSync(old, { recursive: true, force: true });
    });
    untrackTemp(this.stage);
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
    untrackTemp(this.stage);
    this.done = true;
  }
}

/**
 * Whether a folder output could be written at `target` (the checks StagedDir makes when it opens),
 * for a command that wants to refuse before it loads a model. Throws the same errors.
 */
export function checkOutputFolder(target: string, opts: StagedDirOptions = {}): void {
  const t = resolve(target);
  writing(target, () => removeStaleTemps([t]));
  if (checkTarget(target, t, opts.replace === true, opts.marker)) writing(target, () => accessSync(t, constants.W_OK));
}

/**
 * Refuses a target that is not a folder, or one that holds files (unless `replace` and it is a uit
 * output); returns whether it exists.
 */
function checkTarget(label: string, target: string, replace: boolean, marker = OUTPUT_MARKER): boolean {
  const st = writing(label, () => lstatSync(target, { throwIfNoEntry: false }));
  if (st === undefined) return false;
  if (!st.isDirectory()) {
    throw new UitError(`-o ${label}: a file is there, and this output is a folder; choose another name, or a .json/.jsonl file`, ExitCode.USAGE);
  }
  const entries = writing(label, () => readdirSync(target));
  if (entries.length === 0) return true;
  if (!replace) {
    const shown = entries.slice(0, 3).join(', ') + (entries.length > 3 ? ', ...' : '');
    throw new UitError(
      `-o ${label}: the folder already exists and holds ${entries.length} entr${entries.length === 1 ? 'y' : 'ies'} (${shown}); ` +
        'uit does not mix new outputs with old ones: pass --force to replace it whole, or choose another -o',
      ExitCode.USAGE,
    );
  }
  if (!entries.includes(marker)) {
    throw new UitError(
      `-o ${label}: --force replaces only a folder uit wrote (one with ${marker}), and this one has none; ` +
        'remove it yourself, or choose another -o',
      ExitCode.USAGE,
    );
  }
  return true;
}
