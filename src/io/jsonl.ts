// Line-oriented input and output: JSONL and TSV are read one line at a time (node:readline), so
// a file larger than memory streams through; JSONL output is appended record by record to a
// temp file that is renamed into place only when everything succeeded.
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { InputError } from '../errors.js';
import { AtomicWriter } from './atomic.js';
import { JsonSyntaxError, parseLocatedJson, type JsonValue } from './located-json.js';
import { dumps } from './pyjson.js';

export interface TextLine {
  text: string;
  /** 1-based. */
  line: number;
}

/** A failure to open or read an input file as the InputError users see; anything else unchanged. */
export function inputReadError(file: string, err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT') return new InputError({ file }, 'cannot read: no such file', { cause: err });
  if (code === 'EACCES') return new InputError({ file }, 'cannot read: permission denied', { cause: err });
  if (code === 'EISDIR') return new InputError({ file }, 'cannot read: it is a folder', { cause: err });
  return err;
}

/** Streams the lines of a UTF-8 text file (without their line endings). */
export async function* readLines(file: string, label = file): AsyncGenerator<TextLine> {
  const stream = createReadStream(file, { encoding: 'utf8' });
  const rl = createInterface({ input: stream, crlfDelay: Infinity });
  let line = 0;
  try {
    for await (const text of rl) {
      line++;
      // A BOM on the first line is an editor artifact, not data.
      yield { text: line === 1 && text.charCodeAt(0) === 0xfeff ? text.slice(1) : text, line };
    }
  } catch (err) {
    throw inputReadError(label, err);
  } finally {
    rl.close();
    stream.destroy();
  }
}

export interface JsonlRecord {
  value: JsonValue;
  line: number;
}

/** Parses one JSONL line; the error names the file, line and column. NaN/Infinity are accepted. */
export function parseJsonLine(text: string, file: string, line: number): JsonValue {
  try {
    return JSON.parse(text) as JsonValue;
  } catch {
    try {
      return parseLocatedJson(text).value;
    } catch (err) {
      if (err instanceof JsonSyntaxError) {
        throw new InputError({ file, line }, `malformed JSON at column ${err.column}: ${err.reason}`);
      }
      throw err;
    }
  }
}

/** Streams the records of a JSONL file; blank lines are skipped. */
export async function* readJsonl(file: string, label = file): AsyncGenerator<JsonlRecord> {
  for await (const item of readJsonlItems(file, label)) {
    if ('error' in item) throw item.error;
    yield item;
  }
}

/** A JSONL line that does not parse: the next line is another record and still reads. */
export interface BadJsonLine {
  error: InputError;
  line: number;
}

/** The same, with a malformed line as an item instead of an exception (readers that read on). */
export async function* readJsonlItems(file: string, label = file): AsyncGenerator<JsonlRecord | BadJsonLine> {
  for await (const { text, line } of readLines(file, label)) {
    if (text.trim() === '') continue;
    let value: JsonValue;
    try {
      value = parseJsonLine(text, label, line);
    } catch (err) {
      if (err instanceof InputError) {
        yield { error: err, line };
        continue;
      }
      throw err;
    }
    yield { value, line };
  }
}

/** Appends one JSON document per line; nothing appears at `target` until `commit()`. */
export class JsonlWriter {
  private readonly out: AtomicWriter;
  count = 0;

  constructor(readonly target: string) {
    this.out = new AtomicWriter(target);
  }

  /** Writes a record already serialized (one line, no newline). */
  writeRaw(json: string): void {
    this.out.write(json + '\n');
    this.count++;
  }

  write(value: unknown): void {
    this.writeRaw(dumps(value, { separators: [', ', ': '] }));
  }

  commit(): void {
    this.out.commit();
  }

  abort(): void {
    this.out.abort();
  }
}
