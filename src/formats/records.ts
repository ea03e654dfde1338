// Record-per-item formats (Alpaca, self-instruct, ShareGPT) come as a JSON array or as JSONL.
// Both are read here as one stream of records, each with a Checker that knows its line: JSONL
// is streamed line by line; a JSON array is parsed whole (it is one document) with positions.
import { extname } from 'node:path';
import { readJsonl } from '../io/jsonl.js';
import { Checker } from './check.js';
import { parseJsonFile } from './niv2.js';

export interface SourceRecord {
  value: Record<string, unknown>;
  /** 0-based position in the file. */
  index: number;
  line: number;
  check: Checker;
}

export function isJsonlPath(file: string): boolean {
  return extname(file).toLowerCase() === '.jsonl';
}

/** A restartable stream of the objects in a JSON array file or a JSONL file. */
export function openRecords(file: string): () => AsyncIterable<SourceRecord> {
  if (isJsonlPath(file)) {
    return async function* () {
      let index = 0;
      for await (const { value, line } of readJsonl(file)) {
        const check = new Checker(file, value, undefined, line);
        yield { value: check.obj(value, []), index: index++, line, check };
      }
    };
  }
  let parsed: ReturnType<typeof parseJsonFile> | null = null;
  return async function* () {
    parsed ??= parseJsonFile(file, file);
    const { value, locator } = parsed;
    const root = new Checker(file, value, locator);
    const list = root.arr(value, []);
    for (let i = 0; i < list.length; i++) {
      const check = new Checker(file, value, locator, 1, [i]);
      yield { value: check.obj(list[i], []), index: i, line: check.line([]) ?? 1, check };
    }
  };
}
