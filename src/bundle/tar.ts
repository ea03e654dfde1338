// A gzipped tar writer, in-process: the archive is the same on every machine (sorted by the
// caller, fixed owner and mtime, no host user names), needs no `tar` with GNU-only flags, and lets
// the caller see every byte go by (hashing, progress). Files stream through in chunks, so a model's
// weights (a GPT-J 6B in fp16 is one 12 GB file) never sit in memory. POSIX ustar, with a pax
// header for a path that does not fit ustar's 100 + 155 bytes or a size over its 8 GiB. Reading
// is left to the system's `tar -xzf`.
import { closeSync, createWriteStream, openSync, readSync, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import { pipeline } from 'node:stream/promises';
import { createGzip, gzipSync, type Gzip } from 'node:zlib';
import { ExitCode, UitError } from '../errors.js';

const BLOCK = 512;
/** ustar's size field holds 11 octal digits. */
export const USTAR_MAX_SIZE = 8 ** 11 - 1;
const CHUNK = 4 * 2 ** 20;

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

function padding(size: number): Buffer[] {
  return size % BLOCK ? [Buffer.alloc(BLOCK - (size % BLOCK))] : [];
}

/** The header block(s) of one entry: a pax header first when ustar cannot say it all. */
function headers(path: string, size: number, mode: number, type: '0' | '5', mtime: number, maxSize: number): Buffer[] {
  const split = splitUstar(path);
  const records = (split ? '' : paxRecord('path', path)) + (size > maxSize ? paxRecord('size', String(size)) : '');
  const [prefix, name] = split ?? ['', path.slice(-99)]; // the ustar name is only a fallback for readers without pax
  const main = header(name, prefix, { size: size > maxSize ? 0 : size, mode, mtime, type });
  if (!records) return [main];
  const pax = Buffer.from(records, 'utf8');
  return [header('PaxHeader', '', { size: pax.length, mode: 0o644, mtime, type: 'x' }), pax, ...padding(pax.length), main];
}

const END = Buffer.alloc(2 * BLOCK);

export interface TarEntry {
  path: string;
  data: Buffer;
  mode?: number;
}

/** A small archive in memory (files only; parents are created by the reader). */
export function tarGzSync(entries: TarEntry[], mtime: number): Buffer {
  const blocks = entries.flatMap((e) => [...headers(e.path, e.data.length, e.mode ?? 0o644, '0', mtime, USTAR_MAX_SIZE), e.data, ...padding(e.data.length)]);
  return gzipSync(Buffer.concat([...blocks, END]), { level: 9 });
}

/** Streams entries into a .tar.gz file, with backpressure. */
export class TarGzWriter {
  private readonly gzip: Gzip;
  private readonly out: WriteStream;
  /** Settles when the file is written, or fails with the first error (a full disk, a denied write). */
  private readonly written: Promise<void>;
  private closed = false;

  /**
   * `mtime` in seconds since the epoch, the same for every entry. `maxUstarSize`: above it a size
   * goes into a pax record (ustar's limit; tests lower it to reach that path with small files).
   */
  constructor(
    readonly path: string,
    private readonly mtime: number,
    private readonly maxUstarSize = USTAR_MAX_SIZE,
  ) {
    this.gzip = createGzip({ level: 6 });
    this.out = createWriteStream(path);
    this.written = pipeline(this.gzip, this.out);
    this.written.catch(() => {}); // awaited in finish(); a failure also ends push() (below)
  }

  private async push(blocks: Buffer[]): Promise<void> {
    // pipeline() destroys gzip with a write error, so a wait for 'drain' ends with it instead of hanging
    for (const b of blocks) if (!this.gzip.write(b)) await once(this.gzip, 'drain');
  }

  async addDir(path: string, mode = 0o755): Promise<void> {
    await this.push(headers(path.endsWith('/') ? path : `${path}/`, 0, mode, '5', this.mtime, this.maxUstarSize));
  }

  async addFile(path: string, data: Buffer, mode = 0o644): Promise<void> {
    await this.push([...headers(path, data.length, mode, '0', this.mtime, this.maxUstarSize), data, ...padding(data.length)]);
  }

  /**
   * Streams the file at `source` (`size` bytes, as stat said) into the entry, handing each chunk to
   * `onChunk` too. A file that is not `size` bytes long by the time it is read is an error: the
   * header is already written.
   */
  async addFileFrom(path: string, source: string, size: number, mode: number, onChunk: (chunk: Buffer) => void): Promise<void> {
    await this.push(headers(path, size, mode, '0', this.mtime, this.maxUstarSize));
    const fd = openSync(source, 'r');
    try {
      let done = 0;
      for (;;) {
        // a fresh buffer each time: gzip may still hold the previous one
        const chunk = Buffer.allocUnsafe(Math.min(CHUNK, Math.max(size - done, 1)));
        const n = readSync(fd, chunk, 0, chunk.length, null);
        if (n === 0) break;
        done += n;
        if (done > size) break;
        const piece = n === chunk.length ? chunk : chunk.subarray(0, n);
        onChunk(piece);
        await this.push([piece]);
      }
      if (done !== size) throw new UitError(`${source} changed while it was being bundled (${size} bytes, then ${done > size ? 'more' : done}); bundle again`, ExitCode.BAD_INPUT);
    } finally {
      closeSync(fd);
    }
    await this.push(padding(size));
  }

  /** Ends the archive (two zero blocks), flushes, and closes the file. */
  async finish(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.push([END]);
    this.gzip.end();
    await this.written;
  }

  /** Stops writing after a failure; the caller removes the partial file. */
  abort(): void {
    this.closed = true;
    this.gzip.destroy();
    this.out.destroy();
  }
}
