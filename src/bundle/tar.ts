// A gzipped tar writer, in-process: the archive is the same on every machine (sorted by the
// caller, fixed owner and mtime, no host user names) and needs no `tar` with GNU-only flags, and
// the caller sees every byte go by (hashing, progress). Writes POSIX ustar, with a pax header for a
// path that does not fit ustar's 100 + 155 bytes. Reading is left to the system's `tar -xzf`.
import { createWriteStream, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import { finished } from 'node:stream/promises';
import { createGzip, gzipSync, type Gzip } from 'node:zlib';

const BLOCK = 512;
/** ustar's size field holds 11 octal digits. */
const MAX_SIZE = 8 ** 11 - 1;

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

/** Splits a path into ustar's (prefix, name), or null when it does not fit. */
function splitUstar(path: string): [string, string] | null {
  if (Buffer.byteLength(path) <= 100) return ['', path];
  for (let i = path.indexOf('/'); i !== -1; i = path.indexOf('/', i + 1)) {
    const prefix = path.slice(0, i);
    const name = path.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(name) <= 100 && name !== '') return [prefix, name];
  }
  return null;
}

function header(name: string, prefix: string, opts: { size: number; mode: number; mtime: number; type: string }): Buffer {
  const h = Buffer.alloc(BLOCK);
  h.write(name, 0, 100, 'utf8');
  h.write(octal(opts.mode & 0o7777, 8), 100, 'ascii');
  h.write(octal(0, 8), 108, 'ascii'); // uid
  h.write(octal(0, 8), 116, 'ascii'); // gid
  h.write(octal(opts.size, 12), 124, 'ascii');
  h.write(octal(opts.mtime, 12), 136, 'ascii');
  h.write('        ', 148, 'ascii'); // checksum placeholder: spaces while summing
  h.write(opts.type, 156, 'ascii');
  h.write('ustar\u000000', 257, 'ascii');
  h.write(prefix, 345, 155, 'utf8');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(octal(sum, 7) + ' ', 148, 'ascii');
  return h;
}

/** A pax record "LEN key=value\n", where LEN counts the whole record, itself included. */
function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  const n = Buffer.byteLength(body);
  let len = n + 1;
  while (len !== n + String(len).length) len = n + String(len).length;
  return `${len}${body}`;
}

/** The blocks of one entry: header(s), then the data padded to whole blocks. */
function entryBlocks(path: string, data: Buffer, mode: number, type: '0' | '5', mtime: number): Buffer[] {
  if (data.length > MAX_SIZE) throw new Error(`${path}: ${data.length} bytes is more than a ustar entry holds`);
  const blocks: Buffer[] = [];
  const padded = (b: Buffer) => {
    blocks.push(b);
    if (b.length % BLOCK) blocks.push(Buffer.alloc(BLOCK - (b.length % BLOCK)));
  };
  const split = splitUstar(path);
  if (split) {
    blocks.push(header(split[1], split[0], { size: data.length, mode, mtime, type }));
  } else {
    const pax = Buffer.from(paxRecord('path', path), 'utf8');
    blocks.push(header('PaxHeader', '', { size: pax.length, mode: 0o644, mtime, type: 'x' }));
    padded(pax);
    // the ustar name is only a fallback for readers without pax
    blocks.push(header(path.slice(-99), '', { size: data.length, mode, mtime, type }));
  }
  if (data.length) padded(data);
  return blocks;
}

const END = Buffer.alloc(2 * BLOCK);

export interface TarEntry {
  path: string;
  data: Buffer;
  mode?: number;
}

/** A small archive in memory (files only; parents are created by the reader). */
export function tarGzSync(entries: TarEntry[], mtime: number): Buffer {
  const blocks = entries.flatMap((e) => entryBlocks(e.path, e.data, e.mode ?? 0o644, '0', mtime));
  return gzipSync(Buffer.concat([...blocks, END]), { level: 9 });
}

/** Streams entries into a .tar.gz file, with backpressure. */
export class TarGzWriter {
  private readonly gzip: Gzip;
  private readonly out: WriteStream;
  private closed = false;

  /** `mtime` in seconds since the epoch, the same for every entry. */
  constructor(
    readonly path: string,
    private readonly mtime: number,
  ) {
    this.gzip = createGzip({ level: 6 });
    this.out = createWriteStream(path);
    this.gzip.pipe(this.out);
  }

  private async push(blocks: Buffer[]): Promise<void> {
    for (const b of blocks) if (!this.gzip.write(b)) await once(this.gzip, 'drain');
  }

  async addDir(path: string, mode = 0o755): Promise<void> {
    await this.push(entryBlocks(path.endsWith('/') ? path : `${path}/`, Buffer.alloc(0), mode, '5', this.mtime));
  }

  async addFile(path: string, data: Buffer, mode = 0o644): Promise<void> {
    await this.push(entryBlocks(path, data, mode, '0', this.mtime));
  }

  /** Ends the archive (two zero blocks), flushes, and closes the file. */
  async finish(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.push([END]);
    this.gzip.end();
    await finished(this.out);
  }

  /** Stops writing after a failure; the caller removes the partial file. */
  abort(): void {
    this.closed = true;
    this.gzip.destroy();
    this.out.destroy();
  }
}
