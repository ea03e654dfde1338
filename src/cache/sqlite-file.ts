// Reading a SQLite file's pages without SQLite, for salvage (salvage.ts): when a cache is damaged,
// SQLite stops at the first bad page of a table, while most rows still sit in intact pages. This
// module knows the file format (https://www.sqlite.org/fileformat2.html) as far as salvage needs:
// the header, the write-ahead log's committed frames laid over the file, b-tree pages and their
// cells, overflow chains, and records. It reads; it never writes, and it trusts nothing it reads:
// every size and page number is checked, and a bad one makes that page or cell unreadable.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

export type SqlValue = null | number | bigint | string | Buffer;

export interface FileHeader {
  pageSize: number;
  /** Usable bytes per page (page size less the reserved bytes). */
  usable: number;
  /** Pages in the database (the header's count when valid, else the file's size). */
  pageCount: number;
  userVersion: number;
  applicationId: number;
  textEncoding: number;
}

export const PAGE_INDEX_INTERIOR = 2;
export const PAGE_TABLE_INTERIOR = 5;
export const PAGE_INDEX_LEAF = 10;
export const PAGE_TABLE_LEAF = 13;

/** A page's bytes by number: the latest committed WAL frame of it, else the main file's. */
export class PageSource {
  readonly header: FileHeader;
  private readonly fd: number;
  private readonly walFd: number | null;
  /** Page number -> byte offset of its latest committed frame's data in the WAL. */
  private readonly walPages = new Map<number, number>();
  /** Committed WAL frames laid over the file (0 when there is no usable WAL). */
  readonly walFrames: number = 0;

  constructor(readonly path: string) {
    this.fd = openSync(path, 'r');
    const head = Buffer.alloc(100);
    readSync(this.fd, head, 0, 100, 0);
    const raw = head.readUInt16BE(16);
    const pageSize = raw === 1 ? 65536 : raw;
    if (pageSize < 512 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0) {
      closeSync(this.fd);
      throw new Error(`the page size in the header (${raw}) is not a power of two between 512 and 65536`);
    }
    const usable = pageSize - head[20];
    const fileSize = fstatSync(this.fd).size;
    const counted = head.readUInt32BE(28);
    const countValid = head.readUInt32BE(92) === head.readUInt32BE(24) && counted > 0;
    let pageCount = countValid ? Math.max(counted, Math.floor(fileSize / pageSize)) : Math.floor(fileSize / pageSize);
    let walFd: number | null = null;
    try {
      walFd = openSync(`${path}-wal`, 'r');
    } catch {
      walFd = null;
    }
    this.walFd = walFd;
    if (walFd !== null) {
      const { frames, maxPage } = this.readWal(walFd, pageSize);
      this.walFrames = frames;
      pageCount = Math.max(pageCount, maxPage);
    }
    this.header = {
      pageSize,
      usable,
      pageCount,
      userVersion: head.readUInt32BE(60),
      applicationId: head.readInt32BE(68),
      textEncoding: head.readUInt32BE(56),
    };
  }

  /** Indexes the WAL's valid, committed frames (checksums and salts as SQLite checks them). */
  private readWal(fd: number, pageSize: number): { frames: number; maxPage: number } {
    const size = fstatSync(fd).size;
    if (size < 32) return { frames: 0, maxPage: 0 };
    const hdr = Buffer.alloc(32);
    readSync(fd, hdr, 0, 32, 0);
    const magic = hdr.readUInt32BE(0);
    if ((magic & 0xfffffffe) !== 0x377f0682 || hdr.readUInt32BE(8) !== pageSize) return { frames: 0, maxPage: 0 };
    const bigEndian = (magic & 1) === 1;
    const sum = walChecksum(hdr.subarray(0, 24), [0, 0], bigEndian);
    if (sum[0] !== hdr.readUInt32BE(24) || sum[1] !== hdr.readUInt32BE(28)) return { frames: 0, maxPage: 0 };
    const salt1 = hdr.readUInt32BE(16);
    const salt2 = hdr.readUInt32BE(20);
    const frame = Buffer.alloc(24 + pageSize);
    let running: [number, number] = sum;
    const pending = new Map<number, number>();
    let frames = 0;
    let maxPage = 0;
    for (let off = 32; off + 24 + pageSize <= size; off += 24 + pageSize) {
      readSync(fd, frame, 0, frame.length, off);
      if (frame.readUInt32BE(8) !== salt1 || frame.readUInt32BE(12) !== salt2) break;
      running = walChecksum(frame.subarray(24), walChecksum(frame.subarray(0, 8), running, bigEndian), bigEndian);
      if (running[0] !== frame.readUInt32BE(16) || running[1] !== frame.readUInt32BE(20)) break;
      const page = frame.readUInt32BE(0);
      pending.set(page, off + 24);
      const commitSize = frame.readUInt32BE(4);
      if (commitSize !== 0) {
        for (const [p, o] of pending) this.walPages.set(p, o);
        frames += pending.size;
        pending.clear();
        maxPage = Math.max(maxPage, commitSize);
      }
    }
    return { frames, maxPage };
  }

  /** Page `n` (1-based), or null when it is past the end. */
  page(n: number): Buffer | null {
    if (!Number.isInteger(n) || n < 1 || n > this.header.pageCount) return null;
    const buf = Buffer.alloc(this.header.pageSize);
    const walOffset = this.walPages.get(n);
    if (walOffset !== undefined && this.walFd !== null) {
      readSync(this.walFd, buf, 0, buf.length, walOffset);
      return buf;
    }
    const got = readSync(this.fd, buf, 0, buf.length, (n - 1) * this.header.pageSize);
    return got === buf.length ? buf : null;
  }

  close(): void {
    closeSync(this.fd);
    if (this.walFd !== null) closeSync(this.walFd);
  }
}

function walChecksum(data: Buffer, [s0, s1]: [number, number], bigEndian: boolean): [number, number] {
  for (let i = 0; i + 8 <= data.length; i += 8) {
    const x0 = bigEndian ? data.readUInt32BE(i) : data.readUInt32LE(i);
    const x1 = bigEndian ? data.readUInt32BE(i + 4) : data.readUInt32LE(i + 4);
    s0 = (s0 + x0 + s1) >>> 0;
    s1 = (s1 + x1 + s0) >>> 0;
  }
  return [s0, s1];
}

/** A varint at `at`: its value and the offset after it, or null when it runs past `end`. */
export function readVarint(buf: Buffer, at: number, end = buf.length): { value: number; next: number } | null {
  let v = 0;
  for (let i = 0; i < 9; i++) {
    if (at + i >= end) return null;
    const b = buf[at + i];
    if (i === 8) return { value: v * 256 + b, next: at + 9 };
    v = v * 128 + (b & 0x7f);
    if ((b & 0x80) === 0) return { value: v, next: at + i + 1 };
  }
  return null;
}

/** Bytes of a value of serial type `t` (-1 for the reserved types 10 and 11). */
export function serialSize(t: number): number {
  if (t <= 4) return [0, 1, 2, 3, 4][t];
  if (t === 5) return 6;
  if (t === 6 || t === 7) return 8;
  if (t === 8 || t === 9) return 0;
  if (t < 12) return -1;
  return Math.floor((t - 12) / 2);
}

/** The serial types of a record header at `at` (null when it is not a well-formed header within `end`). */
export function recordTypes(buf: Buffer, at: number, end: number, maxColumns: number): { types: number[]; body: number } | null {
  const hs = readVarint(buf, at, end);
  if (!hs || hs.value < 2 || at + hs.value > end) return null;
  const types: number[] = [];
  let p = hs.next;
  const stop = at + hs.value;
  while (p < stop) {
    const t = readVarint(buf, p, stop);
    if (!t || serialSize(t.value) < 0) return null;
    types.push(t.value);
    if (types.length > maxColumns) return null;
    p = t.next;
  }
  return p === stop ? { types, body: stop } : null;
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Decodes a record's values (a whole payload); null when its sizes do not add up to the payload
 * or a text value is not valid UTF-8 (what SQLite stores for a UTF-8 database always is).
 */
export function decodeRecord(payload: Buffer, maxColumns = 64): SqlValue[] | null {
  const h = recordTypes(payload, 0, payload.length, maxColumns);
  if (!h) return null;
  let p = h.body;
  const out: SqlValue[] = [];
  for (const t of h.types) {
    const n = serialSize(t);
    if (p + n > payload.length) return null;
    if (t >= 13 && t % 2 === 1) {
      try {
        out.push(UTF8.decode(payload.subarray(p, p + n)));
      } catch {
        return null;
      }
    } else out.push(decodeValue(payload, p, t));
    p += n;
  }
  return p === payload.length ? out : null;
}

function decodeValue(b: Buffer, p: number, t: number): SqlValue {
  switch (t) {
    case 0:
      return null;
    case 1:
      return b.readInt8(p);
    case 2:
      return b.readInt16BE(p);
    case 3:
      return b.readIntBE(p, 3);
    case 4:
      return b.readInt32BE(p);
    case 5:
      return b.readIntBE(p, 6);
    case 6: {
      const v = b.readBigInt64BE(p);
      return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
    }
    case 7:
      return b.readDoubleBE(p);
    case 8:
      return 0;
    case 9:
      return 1;
    default: {
      const n = serialSize(t);
      const slice = b.subarray(p, p + n);
      return t % 2 === 0 ? Buffer.from(slice) : slice.toString('utf8');
    }
  }
}

/** How much of a payload of `size` bytes is stored in the cell (the rest in overflow pages). */
export function localPayload(size: number, usable: number, index: boolean): number {
  const x = index ? Math.floor(((usable - 12) * 64) / 255) - 23 : usable - 35;
  if (size <= x) return size;
  const m = Math.floor(((usable - 12) * 32) / 255) - 23;
  const k = m + ((size - m) % (usable - 4));
  return k <= x ? k : m;
}

export interface Cell {
  /** Offset of the cell in its page. */
  offset: number;
  payload: Buffer;
  /** Overflow pages the payload continued on. */
  overflow: number[];
}

export interface BtreePage {
  type: number;
  /** Cells whose payload could be read whole; `bad` counts those that could not. */
  cells: Cell[];
  bad: number;
  /** Child pages (interior pages). */
  children: number[];
}

/**
 * Reads `len` payload bytes: `local` from the cell, the rest from the overflow chain starting at
 * `first`; null when the chain is broken (a page out of range, a loop, a short chain).
 */
export function readPayload(src: PageSource, local: Buffer, len: number, first: number): { payload: Buffer; overflow: number[] } | null {
  if (local.length === len) return { payload: local, overflow: [] };
  const parts = [local];
  let have = local.length;
  const seen: number[] = [];
  const room = src.header.usable - 4;
  for (let next = first; have < len; ) {
    if (next === 0 || seen.includes(next) || seen.length > len / room + 1) return null;
    const page = src.page(next);
    if (!page) return null;
    seen.push(next);
    const take = Math.min(room, len - have);
    parts.push(page.subarray(4, 4 + take));
    have += take;
    next = page.readUInt32BE(0);
  }
  return { payload: Buffer.concat(parts, len), overflow: seen };
}

/**
 * A b-tree page read through its header and cell pointers, or null when the header is not a
 * b-tree page's (a damaged page, an overflow or free page). Cells are read one by one: a cell
 * whose size or overflow chain is bad is counted in `bad`, the others are kept.
 */
export function readBtreePage(src: PageSource, n: number, page: Buffer): BtreePage | null {
  const base = n === 1 ? 100 : 0;
  const type = page[base];
  if (type !== PAGE_INDEX_INTERIOR && type !== PAGE_TABLE_INTERIOR && type !== PAGE_INDEX_LEAF && type !== PAGE_TABLE_LEAF) return null;
  const interior = type === PAGE_INDEX_INTERIOR || type === PAGE_TABLE_INTERIOR;
  const headerEnd = base + (interior ? 12 : 8);
  const ncells = page.readUInt16BE(base + 3);
  const contentStart = page.readUInt16BE(base + 5) || 65536;
  const usable = src.header.usable;
  if (headerEnd + 2 * ncells > contentStart || contentStart > usable || page[base + 7] > 60) return null;
  const index = type === PAGE_INDEX_INTERIOR || type === PAGE_INDEX_LEAF;
  const cells: Cell[] = [];
  const children: number[] = [];
  let bad = 0;
  for (let i = 0; i < ncells; i++) {
    const at = page.readUInt16BE(headerEnd + 2 * i);
    if (at < contentStart || at >= usable) {
      bad++;
      continue;
    }
    let p = at;
    if (interior) {
      if (p + 4 > usable) {
        bad++;
        continue;
      }
      children.push(page.readUInt32BE(p));
      p += 4;
    }
    if (type === PAGE_TABLE_INTERIOR) continue; // a rowid divider, no payload
    const size = readVarint(page, p, usable);
    if (!size) {
      bad++;
      continue;
    }
    p = size.next;
    if (type === PAGE_TABLE_LEAF) {
      const rowid = readVarint(page, p, usable);
      if (!rowid) {
        bad++;
        continue;
      }
      p = rowid.next;
    }
    const local = localPayload(size.value, usable, index);
    const spills = local < size.value;
    if (p + local + (spills ? 4 : 0) > usable) {
      bad++;
      continue;
    }
    const read = readPayload(src, page.subarray(p, p + local), size.value, spills ? page.readUInt32BE(p + local) : 0);
    if (!read) {
      bad++;
      continue;
    }
    cells.push({ offset: at, payload: read.payload, overflow: read.overflow });
  }
  if (interior) children.push(page.readUInt32BE(base + 8));
  return { type, cells, bad, children };
}

/**
 * Index-b-tree cells found anywhere in a page by their shape, without the page's header or cell
 * pointers (a page whose start was overwritten keeps the cells at its end): every offset where a
 * payload size and a record header of `columns` columns parse. The caller verifies each candidate
 * (salvage checks content keys), so false starts are harmless.
 */
export function* carveCells(src: PageSource, page: Buffer, columns: ReadonlySet<number>, maxColumns: number): Generator<Cell> {
  const usable = src.header.usable;
  for (let at = 0; at < usable - 3; at++) {
    const size = readVarint(page, at, usable);
    if (!size || size.value < 3 || size.value > 1 << 30) continue;
    const h = recordTypes(page, size.next, usable, maxColumns);
    if (!h || !columns.has(h.types.length)) continue;
    const local = localPayload(size.value, usable, true);
    const spills = local < size.value;
    if (size.next + local + (spills ? 4 : 0) > usable) continue;
    const read = readPayload(src, page.subarray(size.next, size.next + local), size.value, spills ? page.readUInt32BE(size.next + local) : 0);
    if (read) yield { offset: at, payload: read.payload, overflow: read.overflow };
  }
}
