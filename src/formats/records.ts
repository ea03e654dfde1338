// Record-per-item formats (Alpaca, self-instruct, ShareGPT) come as a JSON array or as JSONL.
// Both are read here as one stream of records, each with a Checker that knows its line, and both
// stream: JSONL line by line, a JSON array element by element (io/json-array.ts), so a file
// larger than memory converts either way. A record that does not parse, or is not an object, is a
// BadRecord in the stream: the reader decides whether that ends the file or one task.
import { extname } from 'node:path';
import type { UitError } from '../errors.js';
import { InputError } from '../errors.js';
import { readJsonArray } from '../io/json-array.js';
import { readJsonlItems } from '../io/jsonl.js';
import { JsonSyntaxError, parseJsonLazily } from '../io/located-json.js';
import { Checker } from './check.js';

export interface SourceRecord {
  value: Record<string, unknown>;
  /** 0-based position in the file. */
  index: number;
  line: number;
  check: Checker;
}

/** A record that cannot be read (malformed JSON, not an object); it keeps its place in the count. */
export interface BadRecord {
  bad: UitError;
  index: number;
  line: number;
}

export type RecordItem = SourceRecord | BadRecord;

export function isBadRecord(r: RecordItem): r is BadRecord {
  return 'bad' in r;
}

export function isJsonlPath(file: string): boolean {
  return extname(file).toLowerCase() === '.jsonl';
}

function checked(value: unknown, check: Checker, index: number, line: number): RecordItem {
  try {
    return { value: check.obj(value, []), index, line, check };
  } catch (err) {
    if (err instanceof InputError) return { bad: err, index, line };
    throw err;
  }
}

/** A restartable stream of the objects in a JSON array file or a JSONL file. */
export function openRecords(file: string): () => AsyncIterable<RecordItem> {
  if (isJsonlPath(file)) {
    return async function* () {
      let index = 0;
      for await (const item of readJsonlItems(file)) {
        if ('error' in item) {
          yield { bad: item.error, index: index++, line: item.line };
          continue;
        }
        yield checked(item.value, new Checker(file, item.value, undefined, item.line), index++, item.line);
      }
    };
  }
  return async function* () {
    for await (const el of readJsonArray(file)) {
      let parsed: ReturnType<typeof parseJsonLazily>;
      try {
        parsed = parseJsonLazily(el.text);
      } catch (err) {
        if (!(err instanceof JsonSyntaxError)) throw err;
        // positions inside the element, back to the file's (its first line starts at el.column)
        const column = err.line === 1 ? el.column + err.column - 1 : err.column;
        const bad = new InputError({ file, line: el.line + err.line - 1 }, `malformed JSON at column ${column}: ${err.reason}`);
        yield { bad, index: el.index, line: el.line };
        continue;
      }
      const check = new Checker(file, parsed.value, parsed.locator, el.line, [], [el.index]);
      yield checked(parsed.value, check, el.index, el.line);
    }
  };
}
