// JSON text as Python's `json.dumps(..., ensure_ascii=False)` writes it, so files released by
// Python tools (Ni-v2 task files: indent=4) come back byte for byte after a read and a write.
//
// Differences from JSON.stringify that matter for that: NaN / Infinity are written as Python
// writes them (JSON.stringify turns them into null), floats use Python's repr (1e-05, not
// 0.00001), and empty containers are `[]` / `{}` even when indenting (same as JSON.stringify).
// A float that happens to be integral (Python `1.0`) is read by JavaScript as the number 1 and
// comes back as `1`, unless the reader kept it as an IntegralFloat (dataset rows, parseRow);
// a bigint (a row's integer beyond 2^53, parseRow's exactIntegers) is written with every digit.
import { IntegralFloat } from './located-json.js';

export interface DumpOptions {
  /** Spaces per level, or a string such as a tab; undefined means one line. */
  indent?: number | string;
  /** Python's ensure_ascii=True: every character outside printable ASCII as \uXXXX. */
  ensureAscii?: boolean;
  /** Item and key separators; Python's defaults are [', ', ': '] on one line and [',', ': '] when indenting. */
  separators?: [string, string];
}

// Python's json escapes exactly these (ESCAPE regex `[\x00-\x1f\\"\b\f\n\r\t]`).
const ESCAPES: Record<string, string> = {
  '"': '\\"',
  '\\': '\\\\',
  '\n': '\\n',
  '\r': '\\r',
  '\t': '\\t',
  '\b': '\\b',
  '\f': '\\f',
};
// eslint-disable-next-line no-control-regex
const NEEDS_ESCAPE = /["\\\u0000-\u001f]/g;

// ensure_ascii=True escapes everything outside space..tilde (ESCAPE_ASCII `([\\"]|[^\ -~])`)
const NEEDS_ESCAPE_ASCII = /["\\]|[^\x20-\x7e]/g;

const escapeOne = (c: string): string => ESCAPES[c] ?? '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0');

export function dumpString(s: string, ensureAscii = false): string {
  // a non-BMP character is two UTF-16 units in JavaScript and two \u escapes in Python
  return '"' + s.replace(ensureAscii ? NEEDS_ESCAPE_ASCII : NEEDS_ESCAPE, escapeOne) + '"';
}

/** Python's repr() of a float/int held in a JS number. */
export function dumpNumber(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Infinity) return 'Infinity';
  if (n === -Infinity) return '-Infinity';
  if (Number.isInteger(n) && Math.abs(n) < 1e16) return Object.is(n, -0) ? '-0' : String(n);
  // Shortest round-trip digits, then Python's layout: exponent form when exp < -4 or >= 16.
  const [mant, expStr] = n.toExponential().split('e');
  const exp = Number(expStr);
  const neg = mant.startsWith('-');
  const digits = mant.replace('-', '').replace('.', '');
  let body: string;
  if (exp < -4 || exp >= 16) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    body = `${m}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  } else if (exp < 0) {
    body = `0.${'0'.repeat(-exp - 1)}${digits}`;
  } else if (digits.length > exp + 1) {
    body = `${digits.slice(0, exp + 1)}.${digits.slice(exp + 1)}`;
  } else {
    body = `${digits}${'0'.repeat(exp + 1 - digits.length)}.0`;
  }
  return neg ? `-${body}` : body;
}

/** Python's repr() of a float whose value is integral (`4.0`, `1e+16`). */
function dumpIntegralFloat(n: number): string {
  if (Number.isInteger(n) && Math.abs(n) < 1e16) return (Object.is(n, -0) ? '-0' : String(n)) + '.0';
  return dumpNumber(n);
}

/**
 * Serializes `value` as it would appear nested `level` levels deep (the first line is not
 * indented; inner lines are). Undefined object members are skipped, as JSON.stringify does.
 */
export function dumps(value: unknown, opts: DumpOptions = {}, level = 0): string {
  const indent = typeof opts.indent === 'number' ? ' '.repeat(opts.indent) : opts.indent;
  const ascii = opts.ensureAscii === true;
  const [itemSep, keySep] = opts.separators ?? (indent === undefined ? [', ', ': '] : [',', ': ']);
  const rec = (v: unknown, depth: number): string => {
    if (v === null) return 'null';
    switch (typeof v) {
      case 'string':
        return dumpString(v, ascii);
      case 'number':
        return dumpNumber(v);
      case 'bigint':
        return v.toString();
      case 'boolean':
        return v ? 'true' : 'false';
      case 'object':
        if (v instanceof IntegralFloat) return dumpIntegralFloat(v.value);
        break;
      default:
        throw new TypeError(`cannot serialize a ${typeof v} as JSON`);
    }
    const inner = indent === undefined ? '' : '\n' + indent.repeat(depth + 1);
    const outer = indent === undefined ? '' : '\n' + indent.repeat(depth);
    if (Array.isArray(v)) {
      if (v.length === 0) return '[]';
      return '[' + inner + v.map((x) => rec(x, depth + 1)).join(itemSep + inner) + outer + ']';
    }
    const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined);
    if (entries.length === 0) return '{}';
    return (
      '{' +
      inner +
      entries.map(([k, x]) => dumpString(k, ascii) + keySep + rec(x, depth + 1)).join(itemSep + inner) +
      outer +
      '}'
    );
  };
  return rec(value, level);
}
