// A JSON parser that remembers where things are, so input errors can name a line.
//
// JSON.parse reports a character offset at best and forgets positions after a successful
// parse; a missing field in the 4000th array element still deserves "file:1234". This parser
// records, for every object and array, the line it starts on and the line of each member,
// and it accepts Python's NaN / Infinity / -Infinity, which `json.dump` writes by default
// (one released Ni-v2 task has a `NaN` URL).

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** Positions of one container: its own line and the line of each member (key or index). */
interface NodePos {
  line: number;
  members: Map<string | number, number>;
}

export class JsonSyntaxError extends Error {
  constructor(
    readonly reason: string,
    readonly line: number,
    readonly column: number,
  ) {
    super(`${reason} (line ${line}, column ${column})`);
  }
}

/** Where the parts of a parsed document start. */
export class JsonLocator {
  constructor(private readonly positions: WeakMap<object, NodePos>) {}

  /** The line a container (object or array) starts on. */
  lineOf(node: unknown): number | undefined {
    return typeof node === 'object' && node !== null ? this.positions.get(node)?.line : undefined;
  }

  /** The line of `parent[key]` (the key's line for objects, the element's line for arrays). */
  memberLine(parent: unknown, key: string | number): number | undefined {
    if (typeof parent !== 'object' || parent === null) return undefined;
    return this.positions.get(parent)?.members.get(key);
  }

  /**
   * The line of the deepest existing node along `path` from `root`: for a missing field the
   * line of the object that lacks it, for a wrong value the line of the value.
   */
  lineAt(root: unknown, path: ReadonlyArray<string | number>): number | undefined {
    let node: unknown = root;
    let line = this.lineOf(root);
    for (const key of path) {
      if (typeof node !== 'object' || node === null) break;
      const memberLine = this.memberLine(node, key);
      if (memberLine === undefined) break;
      line = memberLine;
      node = (node as Record<string | number, unknown>)[key];
    }
    return line;
  }
}

/**
 * A number written with a fraction or exponent whose value is integral ("4.0"): JavaScript
 * cannot tell it from 4, Python prints it as "4.0". Only parseRow() produces these.
 */
export class IntegralFloat {
  constructor(readonly value: number) {}
}

/** Where a path of a parsed document starts (a JsonLocator, or one computed on demand). */
export interface LineLocator {
  lineAt(root: unknown, path: ReadonlyArray<string | number>): number | undefined;
}

/**
 * Parses with JSON.parse (fast) and keeps the text: positions are computed only if a line is
 * asked for, i.e. when validation fails. Its lines follow the same path in its own parse of
 * the text, whatever `root` it is given.
 */
export function parseJsonLazily(text: string): { value: JsonValue; locator: LineLocator } {
  let value: JsonValue;
  try {
    value = JSON.parse(text) as JsonValue;
  } catch {
    // not plain JSON (NaN, a syntax error): the located parse gives the value or the line
    return parseLocatedJson(text);
  }
  let located: ParsedJson | null | undefined;
  return {
    value,
    locator: {
      lineAt(_root, path) {
        if (located === undefined) {
          try {
            located = parseLocatedJson(text);
          } catch {
            located = null; // JSON.parse took it but the located parse does not (too deep): no line
          }
        }
        return located === null ? undefined : located.locator.lineAt(located.value, path);
      },
    },
  };
}

export interface ParsedJson {
  value: JsonValue;
  locator: JsonLocator;
}

const WS = new Set([0x20, 0x0a, 0x0d, 0x09]);

/** Deepest nesting the located parser follows (real data nests a few levels). */
export const MAX_DEPTH = 1000;

/** A character for an error message: printable as itself, anything else as U+XXXX. */
export function describeChar(ch: string | undefined): string {
  if (ch === undefined) return 'end of input';
  if (ch === '\n') return "'\\n'";
  const code = ch.codePointAt(0)!;
  if (code < 0x20 || (code >= 0x7f && code < 0xa0) || code === 0xfeff || code === 0xfffd) {
    return `U+${code.toString(16).toUpperCase().padStart(4, '0')}`;
  }
  return `'${ch}'`;
}

/** Parses one JSON document (plus NaN/Infinity), recording positions. Throws JsonSyntaxError. */
export function parseLocatedJson(text: string): ParsedJson {
  return parseJsonImpl(text, false);
}

export interface RowOptions {
  /**
   * An integer written without fraction or exponent that a JavaScript number cannot hold exactly
   * (beyond ±2^53) comes back as a bigint, as Python's json keeps it: 12345678901234567890, not
   * 12345678901234567000. Off by default: a renderer must know bigints to take them.
   */
  exactIntegers?: boolean;
}

/**
 * Parses a dataset row for template rendering: like parseLocatedJson, but integral floats come
 * back as IntegralFloat so templates print them as Python does (and, on request, big integers as
 * bigints).
 */
export function parseRow(text: string, opts: RowOptions = {}): unknown {
  return parseJsonImpl(text, true, opts.exactIntegers === true).value;
}

function parseJsonImpl(text: string, boxFloats: boolean, exactIntegers = false): ParsedJson {
  const positions = new WeakMap<object, NodePos>();
  let i = 0;
  let line = 1;
  // A UTF-8 byte order mark is not JSON, but editors write it; skip it like Python's utf-8-sig.
  if (text.charCodeAt(0) === 0xfeff) i = 1;

  const fail = (reason: string, at = i): never => {
    // Recompute the line for `at` (it may be behind the cursor).
    let l = 1;
    let ls = 0;
    for (let k = 0; k < at && k < text.length; k++) {
      if (text.charCodeAt(k) === 0x0a) {
        l++;
        ls = k + 1;
      }
    }
    throw new JsonSyntaxError(reason, l, at - ls + 1);
  };

  const skipWs = (): void => {
    while (i < text.length) {
      const c = text.charCodeAt(i);
      if (!WS.has(c)) break;
      if (c === 0x0a) line++;
      i++;
    }
  };

  const describe = (at: number): string => describeChar(at >= text.length ? undefined : String.fromCodePoint(text.codePointAt(at)!));

  const parseString = (): string => {
    // i is at the opening quote
    const start = ++i;
    let out = '';
    let chunkStart = start;
    while (true) {
      if (i >= text.length) fail('unterminated string');
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        out += text.slice(chunkStart, i);
        i++;
        return out;
      }
      if (c === 0x5c) {
        out += text.slice(chunkStart, i);
        const e = text[i + 1];
        switch (e) {
          case '"':
            out += '"';
            break;
          case '\\':
            out += '\\';
            break;
          case '/':
            out += '/';
            break;
          case 'b':
            out += '\b';
            break;
          case 'f':
            out += '\f';
            break;
          case 'n':
            out += '\n';
            break;
          case 'r':
            out += '\r';
            break;
          case 't':
            out += '\t';
            break;
          case 'u': {
            const hex = text.slice(i + 2, i + 6);
            if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail('bad \\u escape in string', i);
            out += String.fromCharCode(parseInt(hex, 16));
            i += 4;
            break;
          }
          default:
            fail('bad escape in string', i);
        }
        i += 2;
        chunkStart = i;
        continue;
      }
      if (c < 0x20) fail(c === 0x0a ? 'unterminated string (raw newline)' : 'control character in string');
      i++;
    }
  };

  const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

  const parseValue = (): JsonValue => {
    skipWs();
    if (i >= text.length) fail('unexpected end of input');
    const c = text[i];
    if (c === '{' || c === '[') {
      const v = c === '{' ? parseObject() : parseArray();
      depth--;
      return v;
    }
    if (c === '"') return parseString();
    if (text.startsWith('true', i)) {
      i += 4;
      return true;
    }
    if (text.startsWith('false', i)) {
      i += 5;
      return false;
    }
    if (text.startsWith('null', i)) {
      i += 4;
      return null;
    }
    if (text.startsWith('NaN', i)) {
      i += 3;
      return NaN;
    }
    if (text.startsWith('Infinity', i)) {
      i += 8;
      return Infinity;
    }
    if (text.startsWith('-Infinity', i)) {
      i += 9;
      return -Infinity;
    }
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(text);
    if (m && m[0].length > 0 && m[0] !== '-') {
      i += m[0].length;
      const n = Number(m[0]);
      const float = /[.eE]/.test(m[0]);
      if (boxFloats && Number.isInteger(n) && float) return new IntegralFloat(n) as unknown as JsonValue;
      if (exactIntegers && !float && !Number.isSafeInteger(n)) return BigInt(m[0]) as unknown as JsonValue;
      return n;
    }
    return fail(`unexpected ${describe(i)}`);
  };

  // the parser recurses per level: past this depth a document is refused rather than overflow the stack
  let depth = 0;
  const enter = (): void => {
    if (++depth > MAX_DEPTH) fail(`nested deeper than ${MAX_DEPTH} levels`);
  };

  const parseObject = (): JsonValue => {
    enter();
    const obj: Record<string, JsonValue> = {};
    const pos: NodePos = { line, members: new Map() };
    positions.set(obj, pos);
    i++;
    skipWs();
    if (text[i] === '}') {
      i++;
      return obj;
    }
    while (true) {
      skipWs();
      if (text[i] !== '"') fail(`expected a property name in double quotes, found ${describe(i)}`);
      const keyLine = line;
      const key = parseString();
      skipWs();
      if (text[i] !== ':') fail(`expected ':' after property name, found ${describe(i)}`);
      i++;
      const value = parseValue();
      // defineProperty keeps "__proto__" an ordinary own key, as JSON.parse does.
      if (key === '__proto__') {
        Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
      } else obj[key] = value;
      pos.members.set(key, keyLine);
      skipWs();
      if (text[i] === ',') {
        i++;
        continue;
      }
      if (text[i] === '}') {
        i++;
        return obj;
      }
      fail(`expected ',' or '}' in object, found ${describe(i)}`);
    }
  };

  const parseArray = (): JsonValue => {
    enter();
    const arr: JsonValue[] = [];
    const pos: NodePos = { line, members: new Map() };
    positions.set(arr, pos);
    i++;
    skipWs();
    if (text[i] === ']') {
      i++;
      return arr;
    }
    while (true) {
      skipWs();
      pos.members.set(arr.length, line);
      arr.push(parseValue());
      skipWs();
      if (text[i] === ',') {
        i++;
        continue;
      }
      if (text[i] === ']') {
        i++;
        return arr;
      }
      fail(`expected ',' or ']' in array, found ${describe(i)}`);
    }
  };

  const value = parseValue();
  skipWs();
  if (i < text.length) fail(`unexpected ${describe(i)} after the JSON value`);
  return { value, locator: new JsonLocator(positions) };
}
