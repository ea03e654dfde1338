// The elements of a top-level JSON array, streamed: a 200 MB Alpaca or ShareGPT array is read one
// element at a time, in bounded memory, as JSONL is. The scanner only finds where each element
// begins and ends (brackets and strings); each element is then parsed on its own by the caller, so
// a malformed element is one bad record and the next element still reads. Only a break in the
// array itself (an unterminated string or bracket, a missing comma) ends the file.
import { createReadStream } from 'node:fs';
import { InputError } from '../errors.js';
import { inputReadError } from './jsonl.js';
import { describeChar } from './located-json.js';

export interface ArrayElement {
  /** The element's JSON text. */
  text: string;
  /** 0-based position in the array. */
  index: number;
  /** 1-based line and column where the element starts. */
  line: number;
  column: number;
}

const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const NEWLINE = 0x0a;

function isSpace(c: number): boolean {
  return c === 0x20 || c === NEWLINE || c === 0x0d || c === 0x09 || c === 0xfeff;
}

/**
 * Streams the elements of the JSON array in `file`. Throws an InputError naming the file, line
 * and column when the text is not an array or the array's own syntax breaks.
 */
export async function* readJsonArray(file: string, label = file): AsyncGenerator<ArrayElement> {
  const stream = createReadStream(file, { encoding: 'utf8', highWaterMark: 1 << 20 });
  // where we are
  let line = 1;
  let column = 0;
  // 'start': before '['; 'before': before an element or ']'; 'in': inside one; 'after': after one; 'end': after ']'
  let state = 'start' as 'start' | 'before' | 'in' | 'after' | 'end';
  let depth = 0;
  let inString = false;
  let escaped = false;
  let pieces: string[] = [];
  let index = 0;
  let startLine = 0;
  let startColumn = 0;
  let sawComma = false;
  const fail = (reason: string): never => {
    throw new InputError({ file: label, line }, `malformed JSON at column ${column}: ${reason}`);
  };
  try {
    for await (const chunk of stream as AsyncIterable<string>) {
      let from = 0; // start of the current element's text in this chunk
      for (let i = 0; i < chunk.length; i++) {
        const c = chunk.charCodeAt(i);
        if (c === NEWLINE) {
          line++;
          column = 0;
        } else column++;
        if (state === 'in') {
          if (inString) {
            if (escaped) escaped = false;
            else if (c === BACKSLASH) escaped = true;
            else if (c === QUOTE) inString = false;
            continue;
          }
          if (c === QUOTE) inString = true;
          else if (c === OPEN_BRACE || c === OPEN_BRACKET) depth++;
          else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
            if (depth > 0) depth--;
            else if (c === CLOSE_BRACKET) {
              // the array ends right after a scalar element
              pieces.push(chunk.slice(from, i));
              yield { text: pieces.join('').trimEnd(), index: index++, line: startLine, column: startColumn };
              pieces = [];
              state = 'end';
              continue;
            } else fail(`unexpected '}'`);
          } else if (c === COMMA && depth === 0) {
            pieces.push(chunk.slice(from, i));
            yield { text: pieces.join('').trimEnd(), index: index++, line: startLine, column: startColumn };
            pieces = [];
            state = 'before';
            sawComma = true;
            continue;
          }
          if (depth === 0 && (c === CLOSE_BRACE || c === CLOSE_BRACKET)) {
            // a container element just closed
            pieces.push(chunk.slice(from, i + 1));
            yield { text: pieces.join(''), index: index++, line: startLine, column: startColumn };
            pieces = [];
            state = 'after';
          }
          continue;
        }
        if (isSpace(c)) continue;
        if (state === 'start') {
          if (c !== OPEN_BRACKET) {
            const found = describeChar(String.fromCodePoint(chunk.codePointAt(i)!));
            throw new InputError({ file: label, line }, `expected a JSON array of records, found ${found} (a .json file holds an array; a .jsonl file one record per line)`);
          }
          state = 'before';
          sawComma = false;
        } else if (state === 'before') {
          if (c === CLOSE_BRACKET) {
            if (sawComma) fail("unexpected ']' after ','");
            state = 'end';
            continue;
          }
          if (c === COMMA) fail("unexpected ','");
          state = 'in';
          startLine = line;
          startColumn = column;
          from = i;
          depth = c === OPEN_BRACE || c === OPEN_BRACKET ? 1 : 0;
          inString = c === QUOTE;
          escaped = false;
        } else if (state === 'after') {
          if (c === COMMA) {
            state = 'before';
            sawComma = true;
          } else if (c === CLOSE_BRACKET) state = 'end';
          else fail(`expected ',' or ']' after an array element, found ${describeChar(String.fromCodePoint(chunk.codePointAt(i)!))}`);
        } else {
          fail(`unexpected ${describeChar(String.fromCodePoint(chunk.codePointAt(i)!))} after the JSON array`);
        }
      }
      if (state === 'in') pieces.push(chunk.slice(from));
    }
  } catch (err) {
    throw inputReadError(label, err);
  } finally {
    stream.destroy();
  }
  if (state === 'start') throw new InputError({ file: label }, 'expected a JSON array of records, found an empty file');
  if (state !== 'end') fail(inString ? 'unterminated string' : 'unexpected end of input (the array is not closed)');
}
