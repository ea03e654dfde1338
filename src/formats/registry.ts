// Every format by name, detection from content, and the expansion of an input path (a file or a
// folder) into the readers that read it.
import { existsSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { ExitCode, InputError, UitError } from '../errors.js';
import type { FormatName } from '../types.js';
import { alpaca, alpacaWriter } from './alpaca.js';
import type { FormatModule, FormatWriter, LazyTask, ReadOptions, TargetFormat } from './api.js';
import { crossfit } from './crossfit.js';
import { flan, flanWriter } from './flan.js';
import { listTaskFiles, niv2, niv2Writer } from './niv2.js';
import { p3 } from './p3.js';
import { promptsource } from './promptsource.js';
import { selfinstruct } from './selfinstruct.js';
import { sharegpt } from './sharegpt.js';
import { FORMAT_NAMES, TARGET_NAMES, formatList } from './names.js';
import { sniffFile } from './sniff.js';

/** In detection order: the more specific shapes first. */
export const FORMATS: readonly FormatModule[] = [niv2, p3, selfinstruct, sharegpt, alpaca, flan, promptsource, crossfit];

export const WRITERS: Readonly<Record<TargetFormat, FormatWriter>> = { niv2: niv2Writer, flan: flanWriter, alpaca: alpacaWriter };

export { FORMAT_NAMES, TARGET_NAMES, formatList };

// names.ts lists the formats for the command line without loading them: it must agree with the modules.
if (FORMATS.map((f) => f.name).join() !== FORMAT_NAMES.join() || Object.keys(WRITERS).join() !== TARGET_NAMES.join()) {
  throw new Error('src/formats/names.ts and the format registry disagree');
}

/** Formats whose reader takes a folder as a whole (ids from paths, templates beside rows). */
const FOLDER_READERS = new Set<FormatName>(['niv2', 'promptsource', 'flan']);
const DATA_EXTS = ['.json', '.jsonl', '.tsv', '.txt', '.yaml', '.yml'];

export function formatByName(name: string): FormatModule {
  const f = FORMATS.find((m) => m.name === name);
  if (!f) throw new UitError(`unknown input format '${name}'; known formats:\n${formatList()}`, ExitCode.USAGE);
  return f;
}

export function writerByName(name: string): FormatWriter {
  const w = (WRITERS as Record<string, FormatWriter>)[name];
  if (!w) throw new UitError(`unknown output format '${name}'; use one of: ${TARGET_NAMES.join(', ')}`, ExitCode.USAGE);
  return w;
}

/** The format of one file, from its content. */
export function detectFile(file: string): FormatModule {
  const s = sniffFile(file);
  const found = FORMATS.find((f) => f.detect(s));
  if (!found) {
    throw new InputError({ file }, `cannot tell the format from the content; pass --from with one of:\n${formatList()}`);
  }
  return found;
}

export interface InputPart {
  format: FormatModule;
  path: string;
}

/** Which readers read `path` (a file or a folder), in order. */
export function planInput(path: string, from?: string): InputPart[] {
  let isDir: boolean;
  try {
    isDir = statSync(path).isDirectory();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new InputError({ file: path }, `cannot read: ${code === 'EACCES' ? 'permission denied' : 'no such file or folder'}`);
  }
  const forced = from === undefined ? undefined : formatByName(from);
  if (!isDir) return [{ format: forced ?? detectFile(path), path }];
  if (forced && FOLDER_READERS.has(forced.name)) return [{ format: forced, path }];
  const files = listTaskFiles(path, DATA_EXTS);
  if (!forced) {
    if (files.some((f) => /^templates\.ya?ml$/i.test(basename(f)))) return [{ format: promptsource, path }];
    if (existsSync(join(path, 'templates.json'))) return [{ format: flan, path }];
  }
  if (files.length === 0) throw new InputError({ file: path }, `no data files (${DATA_EXTS.join(', ')}) in this folder`);
  const parts = files.map((f) => ({ format: forced ?? detectFile(f), path: f }));
  if (!forced && parts.every((p) => p.format === niv2)) return [{ format: niv2, path }];
  return parts;
}

/** Reads every task of an input path. */
export async function* readInput(path: string, opts: ReadOptions & { from?: string } = {}): AsyncGenerator<LazyTask> {
  for (const part of planInput(path, opts.from)) yield* part.format.read(part.path, opts);
}
