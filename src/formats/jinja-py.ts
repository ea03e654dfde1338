// PromptSource templates are Jinja2 (Python). @huggingface/jinja parses the same syntax but
// renders with JavaScript habits: `None` prints as "", `True` as "true", lists as JSON, its
// Template class trims blocks, and it lacks filters PromptSource uses (`choice`,
// `most_frequent`, `unique`, `round`, `select`, `random`, `truncate`, ...). So we use its
// tokenizer, parser and interpreter, and rewrite the syntax tree before running it:
//   - every filter `x | f(a)` becomes a call `__filter_f(x, a)` to our Jinja2-faithful filter;
//   - every method call on a value (`s.split()`, `l.append(x)`, `d.update(...)`) whose name we
//     know becomes `__method(s, "split")` with Python semantics (and in-place mutation);
//   - every `{{ expr }}` output becomes `__str(expr)`, Python's str();
// and tokenize without trim_blocks/lstrip_blocks, Jinja2's defaults.
// Helpers receive the library's runtime values (objects with `type` and `value`); we unwrap
// and wrap them here, nowhere else.
import { Environment, Interpreter, parse, tokenize } from '@huggingface/jinja';
import { IntegralFloat } from '../io/located-json.js';
import { dumpNumber } from '../io/pyjson.js';

/** The library's runtime value, structurally. */
export interface RV {
  type: string;
  value: unknown;
  __bool__(): { value: boolean };
}

export class TemplateError extends Error {}

// ---------------------------------------------------------------------------------------------
// Runtime value construction. The library exports no value classes; Environment.set returns the
// value it made, which gives us each constructor once.

type Ctor = new (value?: unknown) => RV;
const probe = new Environment();
const make = (name: string, v: unknown): Ctor => (probe.set(name, v) as unknown as RV).constructor as Ctor;
const C = {
  Str: make('s', ''),
  Int: make('i', 1),
  Float: make('f', 0.5),
  Bool: make('b', true),
  Null: make('n', null),
  Undef: make('u', undefined),
  Arr: make('a', []),
  Obj: make('o', {}),
  Fn: make('fn', () => null),
};

// Tuples only come from evaluating a tuple literal.
const TupleCtor: Ctor = (() => {
  const env = new Environment();
  new Interpreter(env).run(parse(tokenize('{% set t = (1, 2) %}', {})));
  return (env.variables.get('t') as unknown as RV).constructor as Ctor;
})();

const str = (s: string): RV => new C.Str(s);
const tuple = (items: RV[]): RV => new TupleCtor(items);
const int = (n: number): RV => new C.Int(n);
const float = (n: number): RV => new C.Float(n);
const bool = (b: boolean): RV => new C.Bool(b);
const none = (): RV => new C.Null(null);
const undef = (): RV => new C.Undef(undefined);
const arr = (items: RV[]): RV => new C.Arr(items);
const obj = (m: Map<string, RV>): RV => new C.Obj(m);
const fn = (f: (args: RV[]) => RV): RV => new C.Fn((args: RV[]) => f(args));

/** JavaScript data (a dataset row) to runtime values; an IntegralFloat stays a float. */
export function toRV(v: unknown): RV {
  if (v === null) return none();
  if (v === undefined) return undef();
  if (v instanceof IntegralFloat) return float(v.value);
  switch (typeof v) {
    case 'string':
      return str(v);
    case 'number':
      return Number.isInteger(v) ? int(v) : float(v);
    case 'boolean':
      return bool(v);
    case 'object':
      if (Array.isArray(v)) return arr(v.map(toRV));
      return obj(new Map(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, toRV(x)])));
    default:
      throw new TemplateError(`cannot use a ${typeof v} in a template`);
  }
}

const isStr = (x: RV): x is RV & { value: string } => x.type === 'StringValue';
const isNum = (x: RV): x is RV & { value: number } => x.type === 'IntegerValue' || x.type === 'FloatValue';
const isArr = (x: RV): x is RV & { value: RV[] } => x.type === 'ArrayValue' || x.type === 'TupleValue';
const isMap = (x: RV): x is RV & { value: Map<string, RV> } =>
  x.type === 'ObjectValue' || x.type === 'NamespaceValue' || x.type === 'KeywordArgumentsValue';
const isUndef = (x: RV | undefined): boolean => x === undefined || x.type === 'UndefinedValue';
const truthy = (x: RV): boolean => x.__bool__().value;

// ---------------------------------------------------------------------------------------------
// Python str() and repr()

function reprStr(s: string): string {
  const q = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = q;
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '\\') out += '\\\\';
    else if (ch === q) out += '\\' + q;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c < 0x20 || c === 0x7f) out += '\\x' + c.toString(16).padStart(2, '0');
    else out += ch;
  }
  return out + q;
}

export function pyRepr(x: RV): string {
  if (isStr(x)) return reprStr(x.value);
  if (isArr(x)) {
    const items = x.value.map(pyRepr);
    if (x.type === 'TupleValue') return items.length === 1 ? `(${items[0]},)` : `(${items.join(', ')})`;
    return `[${items.join(', ')}]`;
  }
  if (isMap(x)) return `{${[...x.value].map(([k, v]) => `${reprStr(k)}: ${pyRepr(v)}`).join(', ')}}`;
  return pyStr(x);
}

/** Python's str() of a runtime value, which is what Jinja2 prints for `{{ x }}`. */
export function pyStr(x: RV): string {
  switch (x.type) {
    case 'StringValue':
      return x.value as string;
    case 'IntegerValue':
      return String(x.value);
    case 'FloatValue': {
      const v = x.value as number;
      if (Number.isInteger(v) && Math.abs(v) < 1e16) return Object.is(v, -0) ? '-0.0' : `${v}.0`; // Python's repr(4.0)
      return dumpNumber(v).replace(/^NaN$/, 'nan').replace(/Infinity$/, 'inf');
    }
    case 'BooleanValue':
      return x.value ? 'True' : 'False';
    case 'NullValue':
      return 'None';
    case 'UndefinedValue':
      return '';
    case 'FunctionValue':
      return '<function>';
    default:
      return pyRepr(x);
  }
}

// Python's str.isspace() characters (JavaScript's \s differs: \x1c-\x1f, \x85 are Python whitespace).
const PY_WS = '\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const LEAD_WS = new RegExp(`^[${PY_WS}]+`);
const TRAIL_WS = new RegExp(`[${PY_WS}]+$`);
const WS_RUN = new RegExp(`[${PY_WS}]+`);

/** Python's str.strip() with no argument. */
export function pyStrip(s: string): string {
  return s.replace(LEAD_WS, '').replace(TRAIL_WS, '');
}

function stripChars(s: string, chars: string | undefined, left: boolean, right: boolean): string {
  if (chars === undefined) {
    let r = s;
    if (left) r = r.replace(LEAD_WS, '');
    if (right) r = r.replace(TRAIL_WS, '');
    return r;
  }
  const set = new Set(Array.from(chars));
  const cps = Array.from(s);
  let a = 0;
  let b = cps.length;
  if (left) while (a < b && set.has(cps[a])) a++;
  if (right) while (b > a && set.has(cps[b - 1])) b--;
  return cps.slice(a, b).join('');
}

function pySplit(s: string, sep: string | undefined, maxsplit: number): string[] {
  if (sep === undefined) {
    const out: string[] = [];
    let rest = s.replace(LEAD_WS, '');
    while (rest.length > 0) {
      if (maxsplit >= 0 && out.length === maxsplit) {
        out.push(rest.replace(TRAIL_WS, ''));
        break;
      }
      const m = WS_RUN.exec(rest);
      if (!m) {
        out.push(rest);
        break;
      }
      out.push(rest.slice(0, m.index));
      rest = rest.slice(m.index + m[0].length);
    }
    return out;
  }
  if (sep === '') throw new TemplateError('ValueError: empty separator');
  const parts = s.split(sep);
  if (maxsplit < 0 || parts.length <= maxsplit + 1) return parts;
  return [...parts.slice(0, maxsplit), parts.slice(maxsplit).join(sep)];
}

// ---------------------------------------------------------------------------------------------
// Python equality, ordering and iteration

/** Python's ==: by value for lists, tuples and dicts (a list never equals a tuple), 1 == 1.0 == True. */
function pyEq(a: RV, b: RV): boolean {
  if (isNum(a) && isNum(b)) return a.value === b.value;
  if (a.type === 'BooleanValue' && isNum(b)) return Number(a.value) === b.value;
  if (isNum(a) && b.type === 'BooleanValue') return a.value === Number(b.value);
  if (isArr(a) && isArr(b)) {
    if (a.type !== b.type) return false;
    return a.value.length === b.value.length && a.value.every((x, i) => pyEq(x, b.value[i]));
  }
  if (isMap(a) && isMap(b)) {
    if (a.value.size !== b.value.size) return false;
    for (const [k, v] of a.value) {
      const w = b.value.get(k);
      if (!w || !pyEq(v, w)) return false;
    }
    return true;
  }
  if (a.type !== b.type) return false;
  return a.value === b.value;
}

const numeric = (x: RV): number | null => (isNum(x) || x.type === 'BooleanValue' ? Number(x.value) : null);

/** Strings order by code point in Python (JavaScript's < compares UTF-16 units). */
function cmpCodePoints(a: string, b: string): number {
  const x = Array.from(a);
  const y = Array.from(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return x[i].codePointAt(0)! - y[i].codePointAt(0)!;
  }
  return x.length - y.length;
}

/** Python's a < b: numbers, strings, and lists or tuples lexicographically; else a TypeError. */
function pyLt(a: RV, b: RV): boolean {
  const x = numeric(a);
  const y = numeric(b);
  if (x !== null && y !== null) return x < y;
  if (isStr(a) && isStr(b)) return cmpCodePoints(a.value, b.value) < 0;
  if (isArr(a) && isArr(b) && a.type === b.type) {
    const n = Math.min(a.value.length, b.value.length);
    for (let i = 0; i < n; i++) if (!pyEq(a.value[i], b.value[i])) return pyLt(a.value[i], b.value[i]);
    return a.value.length < b.value.length;
  }
  if (isUndef(a) || isUndef(b)) throw new TemplateError('UndefinedError: an undefined value cannot be compared');
  throw new TemplateError(`TypeError: '<' not supported between instances of '${pyTypeName(a)}' and '${pyTypeName(b)}'`);
}

/** Jinja2's ignore_case postprocess (the default of sort, dictsort, min, max, unique). */
const ignoreCase = (x: RV, caseSensitive: boolean): RV => (!caseSensitive && isStr(x) ? str(x.value.toLowerCase()) : x);

/** A sort comparator from Python's <, as sorted() uses it. */
function compare(a: RV, b: RV, caseSensitive = true): number {
  const ka = ignoreCase(a, caseSensitive);
  const kb = ignoreCase(b, caseSensitive);
  return pyLt(ka, kb) ? -1 : pyLt(kb, ka) ? 1 : 0;
}

/**
 * sorted() with a stable reverse (Python keeps equal items in their order when reverse=True);
 * `keyed` compares keys as one-item lists, as Jinja2's sort filter does (make_multi_attrgetter):
 * equal keys are equal without a <, so Undefined keys do not fail.
 */
function pySorted(list: RV[], cmp: (a: RV, b: RV) => number, reverse: boolean): RV[] {
  return [...list].sort((a, b) => (reverse ? -cmp(a, b) : cmp(a, b)));
}

/** Python iter(): strings give characters, dicts give keys; Jinja2's Undefined iterates as empty. */
function items(x: RV, what: string): RV[] {
  if (isUndef(x)) return [];
  if (isArr(x)) return x.value;
  if (isStr(x)) return Array.from(x.value, (c) => str(c));
  if (isMap(x)) return [...x.value.keys()].map(str);
  throw new TemplateError(`TypeError: '${pyTypeName(x)}' object is not iterable (${what})`);
}

/** Python slicing (`x[a:b:c]`) of a string, list or tuple, with PySlice_AdjustIndices' bounds. */
function pySlice(x: RV, parts: RV[], desc: string): RV {
  if (isUndef(x)) throw new TemplateError(`UndefinedError: '${desc}' is undefined`);
  const [start, stop, step] = parts.map((p) => {
    if (p.type === 'NullValue') return null;
    if (p.type === 'IntegerValue' || p.type === 'BooleanValue') return Number(p.value);
    throw new TemplateError('TypeError: slice indices must be integers or None or have an __index__ method');
  });
  const seq: unknown[] = isStr(x) ? Array.from(x.value) : isArr(x) ? x.value : [];
  if (!isStr(x) && !isArr(x)) throw new TemplateError(`TypeError: '${pyTypeName(x)}' object is not subscriptable`);
  const st = step ?? 1;
  if (st === 0) throw new TemplateError('ValueError: slice step cannot be zero');
  const n = seq.length;
  const [lower, upper] = st > 0 ? [0, n] : [-1, n - 1];
  const clamp = (i: number | null, dflt: number): number => {
    if (i === null) return dflt;
    const j = i < 0 ? i + n : i;
    return j < lower ? lower : j > upper ? upper : j;
  };
  const a = clamp(start, st > 0 ? lower : upper);
  const b = clamp(stop, st > 0 ? upper : lower);
  const out: unknown[] = [];
  for (let i = a; st > 0 ? i < b : i > b; i += st) out.push(seq[i]);
  if (isStr(x)) return str(out.join(''));
  return x.type === 'TupleValue' ? tuple(out as RV[]) : arr(out as RV[]);
}

/** Python's binary operators (the library's follow JavaScript: "a" + 1 is "a1", -7 % 3 is -1). */
function pyBinop(op: string, a: RV, b: RV): RV {
  if (op === '~') return str(pyStr(a) + pyStr(b)); // Jinja2: str() of both sides
  if (op === '<') return bool(pyLt(a, b));
  if (op === '>') return bool(pyLt(b, a));
  if (op === '<=') return bool(pyLt(a, b) || pyEq(a, b));
  if (op === '>=') return bool(pyLt(b, a) || pyEq(a, b));
  if (isUndef(a) || isUndef(b)) throw new TemplateError(`UndefinedError: an undefined value used with '${op}'`);
  const x = numeric(a);
  const y = numeric(b);
  if (x !== null && y !== null) {
    const isFloat = a.type === 'FloatValue' || b.type === 'FloatValue';
    const num = (v: number): RV => (isFloat ? float(v) : int(v));
    const zero = (): never => {
      throw new TemplateError(`ZeroDivisionError: ${op === '/' ? 'division' : op === '%' ? 'modulo' : 'integer division or modulo'} by zero`);
    };
    switch (op) {
      case '+':
        return num(x + y);
      case '-':
        return num(x - y);
      case '*':
        return num(x * y);
      case '/':
        if (y === 0) zero();
        return float(x / y);
      case '//':
        if (y === 0) zero();
        return num(Math.floor(x / y));
      case '%': {
        if (y === 0) zero();
        const r = x % y;
        return num(r !== 0 && r < 0 !== y < 0 ? r + y : r); // the sign of the divisor
      }
      case '**':
        if (x === 0 && y < 0) throw new TemplateError('ZeroDivisionError: 0.0 cannot be raised to a negative power');
        return isFloat || y < 0 ? float(x ** y) : int(x ** y);
    }
  }
  if (op === '+') {
    if (isStr(a) && isStr(b)) return str(a.value + b.value);
    if (isArr(a) && isArr(b) && a.type === b.type) return a.type === 'TupleValue' ? tuple([...a.value, ...b.value]) : arr([...a.value, ...b.value]);
  }
  if (op === '*') {
    const [seq, n] = y !== null ? [a, y] : x !== null ? [b, x] : [a, null];
    if (n !== null && Number.isInteger(n) && (a.type !== 'FloatValue' && b.type !== 'FloatValue')) {
      if (isStr(seq)) return str(seq.value.repeat(Math.max(0, n)));
      if (isArr(seq)) {
        const out = Array.from({ length: Math.max(0, n) }, () => seq.value).flat();
        return seq.type === 'TupleValue' ? tuple(out) : arr(out);
      }
    }
  }
  if (op === '%' && isStr(a)) {
    if (b.type === 'TupleValue') return str(percentFormat(a.value, b.value as RV[], new Map()));
    if (isMap(b)) return str(percentFormat(a.value, [b], b.value));
    return str(percentFormat(a.value, [b], new Map()));
  }
  throw new TemplateError(`TypeError: unsupported operand type(s) for ${op}: '${pyTypeName(a)}' and '${pyTypeName(b)}'`);
}

function pyTypeName(x: RV): string {
  const names: Record<string, string> = {
    StringValue: 'str',
    IntegerValue: 'int',
    FloatValue: 'float',
    BooleanValue: 'bool',
    NullValue: 'NoneType',
    ArrayValue: 'list',
    TupleValue: 'tuple',
    ObjectValue: 'dict',
    UndefinedValue: 'Undefined',
    FunctionValue: 'function',
  };
  return names[x.type] ?? x.type;
}

/**
 * Jinja2's attribute and item lookup (Environment.getattr / getitem): a missing key or index
 * gives Undefined, and looking anything up on Undefined is an UndefinedError naming it.
 */
function getMember(obj: RV, key: RV, desc: string): RV {
  if (isUndef(obj)) throw new TemplateError(`UndefinedError: '${desc}' is undefined`);
  if (isMap(obj)) return obj.value.get(isStr(key) ? key.value : dictKey(key)) ?? undef();
  if ((isArr(obj) || isStr(obj)) && (key.type === 'IntegerValue' || key.type === 'BooleanValue')) {
    const list = isArr(obj) ? obj.value : Array.from(obj.value);
    const i = Number(key.value);
    const v = list[i < 0 ? list.length + i : i];
    if (v === undefined) return undef();
    return isArr(obj) ? (v as RV) : str(v as string);
  }
  return undef();
}

/** Map key of a non-string dict key ({1: "one"}, {True: "Yes"}); strings are their own key. */
function dictKey(key: RV): string {
  if (isStr(key)) return key.value;
  // Python: True == 1 and 1 == 1.0 hash alike
  const v = key.type === 'BooleanValue' ? Number(key.value) : key.value;
  return `\u0000${isNum(key) || key.type === 'BooleanValue' ? String(v) : pyRepr(key)}`;
}

function pyContains(needle: RV, haystack: RV): boolean {
  if (isStr(haystack)) {
    if (!isStr(needle)) throw new TemplateError(`TypeError: 'in <string>' requires string as left operand, not ${pyTypeName(needle)}`);
    return haystack.value.includes(needle.value);
  }
  if (isMap(haystack)) return isStr(needle) && haystack.value.has(needle.value);
  if (haystack.type === 'NullValue' || isNum(haystack) || haystack.type === 'BooleanValue') {
    throw new TemplateError(`TypeError: argument of type '${pyTypeName(haystack)}' is not iterable`);
  }
  return items(haystack, 'in').some((x) => pyEq(x, needle));
}

function asStr(x: RV, what: string): string {
  if (!isStr(x)) throw new TemplateError(`${what} expects a string, got ${pyRepr(x)}`);
  return x.value;
}

function asInt(x: RV | undefined, what: string, dflt?: number): number {
  if (isUndef(x)) {
    if (dflt === undefined) throw new TemplateError(`${what}: missing argument`);
    return dflt;
  }
  if (x!.type === 'IntegerValue') return x!.value as number;
  if (x!.type === 'BooleanValue') return Number(x!.value);
  throw new TemplateError(`${what} expects an integer, got ${pyRepr(x!)}`);
}

/** Splits trailing keyword arguments off a call's arguments. */
function splitKw(args: RV[]): [RV[], Map<string, RV>] {
  const last = args[args.length - 1];
  if (last && last.type === 'KeywordArgumentsValue') return [args.slice(0, -1), last.value as Map<string, RV>];
  return [args, new Map()];
}

function arg(pos: RV[], kw: Map<string, RV>, i: number, name: string): RV | undefined {
  return pos[i] ?? kw.get(name);
}

function getAttr(x: RV, path: string): RV {
  let v: RV = x;
  for (const part of path.split('.')) {
    if (isMap(v)) v = v.value.get(part) ?? undef();
    else if (isArr(v) && /^-?\d+$/.test(part)) v = v.value.at(Number(part)) ?? undef();
    else return undef();
  }
  return v;
}

// ---------------------------------------------------------------------------------------------
// Random choices: PromptSource used Python's unseeded `random`; we use a seeded generator so
// a conversion is reproducible.

export type Rng = () => number;

export function seededRng(...parts: Array<string | number>): Rng {
  // xmur3 hash of the parts -> mulberry32
  let h = 1779033703 ^ 0;
  const s = parts.join('\u0000');
  for (let i = 0; i < s.length; i++) {
    h = Math.imul(h ^ s.charCodeAt(i), 3432918353);
    h = (h << 13) | (h >>> 19);
  }
  let a = h >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------------------------------------
// Tests (for select/reject/selectattr and `is`)

function runTest(name: string, x: RV, args: RV[]): boolean {
  const a = args[0];
  switch (name) {
    case 'defined':
      return !isUndef(x);
    case 'undefined':
      return isUndef(x);
    case 'none':
      return x.type === 'NullValue';
    case 'true':
      return x.type === 'BooleanValue' && x.value === true;
    case 'false':
      return x.type === 'BooleanValue' && x.value === false;
    case 'string':
      return isStr(x);
    case 'number':
      return isNum(x);
    case 'integer':
      return x.type === 'IntegerValue';
    case 'float':
      return x.type === 'FloatValue';
    case 'mapping':
      return isMap(x);
    case 'sequence':
    case 'iterable':
      return isArr(x) || isStr(x) || isMap(x);
    case 'lower':
      return isStr(x) && x.value === x.value.toLowerCase();
    case 'upper':
      return isStr(x) && x.value === x.value.toUpperCase();
    case 'even':
      return asInt(x, 'even') % 2 === 0;
    case 'odd':
      return asInt(x, 'odd') % 2 !== 0;
    case 'divisibleby':
      return asInt(x, 'divisibleby') % asInt(a, 'divisibleby') === 0;
    case 'eq':
    case 'equalto':
    case '==':
    case 'sameas':
      return pyEq(x, a);
    case 'ne':
    case '!=':
      return !pyEq(x, a);
    case 'gt':
    case 'greaterthan':
    case '>':
      return compare(x, a) > 0;
    case 'ge':
    case '>=':
      return compare(x, a) >= 0;
    case 'lt':
    case 'lessthan':
    case '<':
      return compare(x, a) < 0;
    case 'le':
    case '<=':
      return compare(x, a) <= 0;
    case 'in':
      return items(a, 'in').some((y) => pyEq(x, y)) || (isStr(a) && isStr(x) && a.value.includes(x.value));
    default:
      throw new TemplateError(`unknown test '${name}'`);
  }
}

// ---------------------------------------------------------------------------------------------
// Filters, as Jinja2 defines them (jinja2/filters.py), plus PromptSource's choice and most_frequent.

type Filter = (x: RV, args: RV[], rng: Rng) => RV;

/** The exact value of a finite double as num / den (den a power of two). */
function exactRational(x: number): [bigint, bigint] {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const bits = view.getBigUint64(0);
  const expBits = Number((bits >> 52n) & 0x7ffn);
  const frac = bits & ((1n << 52n) - 1n);
  const mant = expBits === 0 ? frac : frac | (1n << 52n);
  const exp = (expBits === 0 ? 1 : expBits) - 1075; // x = mant * 2^exp
  const sign = x < 0 ? -1n : 1n;
  return exp >= 0 ? [sign * (mant << BigInt(exp)), 1n] : [sign * mant, 1n << BigInt(-exp)];
}

/**
 * Python's round(x, ndigits) for a float (CPython's double_round): the exact binary value is
 * rounded to ndigits decimal places, ties to even, and the decimal read back. So 0.45 -> 0.5
 * (0.45 is 0.4500000000000000111...), 2.675 -> 2.67 (2.67499999...), 2.5 -> 2.0.
 */
export function pyRoundFloat(x: number, ndigits: number): number {
  if (!Number.isFinite(x) || x === 0) return x;
  if (ndigits > 323) return x; // CPython: already exact
  if (ndigits < -308) return x < 0 ? -0 : 0;
  let [num, den] = exactRational(Math.abs(x));
  if (ndigits >= 0) num *= 10n ** BigInt(ndigits);
  else den *= 10n ** BigInt(-ndigits);
  let q = num / den;
  const twice = 2n * (num - q * den);
  if (twice > den || (twice === den && q % 2n === 1n)) q += 1n;
  const r = Number(`${q}e${-ndigits}`); // JavaScript's decimal parse is correctly rounded, like strtod
  return x < 0 ? -r : r;
}

/** Python's round(n, ndigits) for an int: an int, ties to even. */
function pyRoundInt(n: number, ndigits: number): number {
  if (ndigits >= 0) return n;
  const m = 10n ** BigInt(-ndigits);
  const v = BigInt(n);
  const a = v < 0n ? -v : v;
  let q = a / m;
  const twice = 2n * (a - q * m);
  if (twice > m || (twice === m && q % 2n === 1n)) q += 1n;
  return Number((v < 0n ? -q : q) * m);
}

/** Python's 10 ** p as Jinja2's round filter uses it: an int for p >= 0, a float otherwise. */
const pow10 = (p: number): number => Number(`1e${p}`);

function toInt(x: RV, dflt: RV): RV {
  if (x.type === 'IntegerValue') return x;
  if (x.type === 'BooleanValue') return int(Number(x.value));
  if (x.type === 'FloatValue') return Number.isFinite(x.value as number) ? int(Math.trunc(x.value as number)) : dflt;
  if (isStr(x)) {
    const s = pyStrip(x.value).replace(/_/g, '');
    if (/^[+-]?\d+$/.test(s)) return int(parseInt(s, 10));
    if (/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s)) return int(Math.trunc(parseFloat(s)));
    return dflt;
  }
  return dflt;
}

function toFloat(x: RV, dflt: RV): RV {
  if (isNum(x)) return float(x.value);
  if (x.type === 'BooleanValue') return float(Number(x.value));
  if (isStr(x)) {
    const s = pyStrip(x.value).toLowerCase();
    if (/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/.test(s)) return float(parseFloat(s));
    if (/^[+-]?(inf|infinity)$/.test(s)) return float(s.startsWith('-') ? -Infinity : Infinity);
    if (/^[+-]?nan$/.test(s)) return float(NaN);
  }
  return dflt;
}

/** Python %-formatting, enough for `"%s (%d)" | format(a, b)`. */
function percentFormat(fmt: string, pos: RV[], kw: Map<string, RV>): string {
  let i = 0;
  return fmt.replace(/%(\([^)]*\))?([-+ 0#]*)(\d+|\*)?(?:\.(\d+))?([sdifrxXeEgGc%])/g, (_m, key, flags, width, prec, conv) => {
    if (conv === '%') return '%';
    const v = key ? kw.get(key.slice(1, -1)) : pos[i++];
    if (v === undefined) throw new TemplateError('TypeError: not enough arguments for format string');
    let s: string;
    switch (conv) {
      case 's':
        s = pyStr(v);
        break;
      case 'r':
        s = pyRepr(v);
        break;
      case 'd':
      case 'i':
        s = String(Math.trunc(Number(v.value)));
        break;
      case 'f':
        s = Number(v.value).toFixed(prec === undefined ? 6 : Number(prec));
        break;
      case 'e':
      case 'E':
        s = Number(v.value).toExponential(prec === undefined ? 6 : Number(prec)).replace(/e([+-])(\d)$/, 'e$10$2');
        if (conv === 'E') s = s.toUpperCase();
        break;
      case 'x':
        s = Math.trunc(Number(v.value)).toString(16);
        break;
      case 'X':
        s = Math.trunc(Number(v.value)).toString(16).toUpperCase();
        break;
      case 'c':
        s = isStr(v) ? v.value : String.fromCodePoint(Number(v.value));
        break;
      default:
        s = pyStr(v);
    }
    if (conv === 's' && prec !== undefined) s = s.slice(0, Number(prec));
    if (width && width !== '*') {
      const w = Number(width);
      if (s.length < w) s = flags.includes('-') ? s.padEnd(w) : s.padStart(w, flags.includes('0') && conv !== 's' ? '0' : ' ');
    }
    return s;
  });
}

function uniqueBy(list: RV[], caseSensitive: boolean, attribute: string | undefined): RV[] {
  const seen: RV[] = [];
  const out: RV[] = [];
  for (const item of list) {
    let key = attribute ? getAttr(item, attribute) : item;
    if (!caseSensitive && isStr(key)) key = str(key.value.toLowerCase());
    if (!seen.some((s) => pyEq(s, key))) {
      seen.push(key);
      out.push(item);
    }
  }
  return out;
}

function selectOrReject(x: RV, args: RV[], select: boolean, byAttr: boolean): RV {
  const [pos] = splitKw(args);
  let attr: string | undefined;
  let rest = pos;
  if (byAttr) {
    attr = asStr(pos[0], 'selectattr');
    rest = pos.slice(1);
  }
  const testName = rest[0] ? asStr(rest[0], 'select') : undefined;
  const testArgs = rest.slice(1);
  // Jinja2's select_or_reject: `if value:` (None selects nothing)
  return arr(
    (truthy(x) ? items(x, 'select') : []).filter((item) => {
      const v = attr ? getAttr(item, attr) : item;
      const ok = testName === undefined ? truthy(v) : runTest(testName, v, testArgs);
      return ok === select;
    }),
  );
}

/** Filters that do arithmetic on their value: Jinja2's Undefined raises there. */
const FAIL_ON_UNDEFINED = new Set(['int', 'float', 'round', 'abs', 'sum', 'tojson']);

const FILTERS: Record<string, Filter> = {
  abs: (x) => {
    if (!isNum(x) && x.type !== 'BooleanValue') throw new TemplateError(`TypeError: bad operand type for abs(): '${pyTypeName(x)}'`);
    return x.type === 'FloatValue' ? float(Math.abs(x.value as number)) : int(Math.abs(Number(x.value)));
  },
  capitalize: (x) => {
    const s = pyStr(x);
    return str(s.charAt(0).toUpperCase() + s.slice(1).toLowerCase());
  },
  choice: (x, _a, rng) => {
    const list = items(x, 'choice');
    if (list.length === 0) throw new TemplateError('IndexError: choice from an empty sequence');
    return list[Math.floor(rng() * list.length)];
  },
  count: (x) => int(items(x, 'length').length),
  default: (x, args) => {
    const [pos, kw] = splitKw(args);
    const dflt = arg(pos, kw, 0, 'default_value') ?? str('');
    const boolean = arg(pos, kw, 1, 'boolean');
    if (isUndef(x) || (boolean && truthy(boolean) && !truthy(x))) return dflt;
    return x;
  },
  first: (x) => items(x, 'first')[0] ?? undef(),
  float: (x, args) => toFloat(x, splitKw(args)[0][0] ?? float(0)),
  format: (x, args) => {
    const [pos, kw] = splitKw(args);
    return str(percentFormat(asStr(x, 'format'), pos, kw));
  },
  int: (x, args) => {
    const [pos, kw] = splitKw(args);
    return toInt(x, arg(pos, kw, 0, 'default') ?? int(0));
  },
  join: (x, args) => {
    const [pos, kw] = splitKw(args);
    const sep = arg(pos, kw, 0, 'd');
    const attribute = arg(pos, kw, 1, 'attribute');
    let list = items(x, 'join');
    if (attribute && !isUndef(attribute)) list = list.map((i) => getAttr(i, pyStr(attribute)));
    return str(list.map(pyStr).join(sep ? pyStr(sep) : ''));
  },
  last: (x) => {
    const list = items(x, 'last');
    return list[list.length - 1] ?? undef();
  },
  length: (x) => {
    if (isUndef(x)) return int(0);
    if (isStr(x)) return int(Array.from(x.value).length);
    if (isMap(x)) return int(x.value.size);
    return int(items(x, 'length').length);
  },
  list: (x) => arr([...items(x, 'list')]),
  lower: (x) => str(pyStr(x).toLowerCase()),
  map: (x, args, rng) => {
    const [pos, kw] = splitKw(args);
    const list = truthy(x) ? items(x, 'map') : []; // Jinja2: `if value:` (None maps to nothing)
    if (pos.length === 0) {
      const attribute = kw.get('attribute');
      if (!attribute) throw new TemplateError('map needs a filter name or attribute=');
      const dflt = kw.get('default');
      return arr(list.map((i) => {
        const v = getAttr(i, pyStr(attribute));
        return isUndef(v) && dflt ? dflt : v;
      }));
    }
    const name = asStr(pos[0], 'map');
    const f = FILTERS[name];
    if (!f) throw new TemplateError(`no filter named '${name}'`);
    const rest = pos.slice(1);
    const extra = kw.size ? [...rest, new C.Obj(kw)] : rest;
    return arr(list.map((i) => f(i, extra, rng)));
  },
  max: (x, args) => minMax(x, args, 1),
  min: (x, args) => minMax(x, args, -1),
  most_frequent: (x) => {
    const list = items(x, 'most_frequent');
    if (list.length === 0) return none();
    const counts: Array<[RV, number]> = [];
    for (const item of list) {
      const c = counts.find(([k]) => pyEq(k, item));
      if (c) c[1]++;
      else counts.push([item, 1]);
    }
    // Counter.most_common: by count, ties in first-seen order
    const max = Math.max(...counts.map(([, n]) => n));
    return arr(counts.filter(([, n]) => n === max).map(([k]) => k));
  },
  random: (x, _a, rng) => {
    // jinja2.filters.do_random: an empty sequence gives Undefined
    const list = items(x, 'random');
    if (list.length === 0) return undef();
    return list[Math.floor(rng() * list.length)];
  },
  reject: (x, args) => selectOrReject(x, args, false, false),
  rejectattr: (x, args) => selectOrReject(x, args, false, true),
  replace: (x, args) => {
    const [pos, kw] = splitKw(args);
    const old = pyStr(arg(pos, kw, 0, 'old') ?? str(''));
    const rep = pyStr(arg(pos, kw, 1, 'new') ?? str(''));
    const count = asInt(arg(pos, kw, 2, 'count'), 'replace', -1);
    return str(pyReplace(pyStr(x), old, rep, count));
  },
  reverse: (x) => (isStr(x) ? str(Array.from(x.value).reverse().join('')) : arr([...items(x, 'reverse')].reverse())),
  round: (x, args) => {
    // jinja2.filters.do_round: round(value, precision) for "common", else
    // math.ceil/floor(value * 10 ** precision) / 10 ** precision (always a float)
    const [pos, kw] = splitKw(args);
    const precision = asInt(arg(pos, kw, 0, 'precision'), 'round', 0);
    const method = arg(pos, kw, 1, 'method');
    const m = method ? pyStr(method) : 'common';
    if (m !== 'common' && m !== 'ceil' && m !== 'floor') throw new TemplateError('FilterArgumentError: method must be common, ceil or floor');
    if (!isNum(x) && x.type !== 'BooleanValue') throw new TemplateError(`TypeError: type ${pyTypeName(x)} doesn't define __round__ method`);
    const v = Number(x.value);
    if (m === 'common') return x.type === 'FloatValue' ? float(pyRoundFloat(v, precision)) : int(pyRoundInt(v, precision));
    const scaled = (m === 'ceil' ? Math.ceil : Math.floor)(v * pow10(precision));
    if (!Number.isFinite(scaled)) throw new TemplateError(`OverflowError: cannot convert float ${pyStr(float(scaled))} to integer`);
    return float(scaled / pow10(precision));
  },
  safe: (x) => x,
  select: (x, args) => selectOrReject(x, args, true, false),
  selectattr: (x, args) => selectOrReject(x, args, true, true),
  sort: (x, args) => {
    const [pos, kw] = splitKw(args);
    const reverse = arg(pos, kw, 0, 'reverse');
    const cs = arg(pos, kw, 1, 'case_sensitive');
    const attribute = arg(pos, kw, 2, 'attribute');
    // keys are lists of the comma-separated attributes' values, compared as Python compares lists
    const paths = attribute && !isUndef(attribute) && attribute.type !== 'NullValue' ? pyStr(attribute).split(',') : null;
    const caseSensitive = !!cs && truthy(cs);
    const key = (i: RV): RV => arr((paths ? paths.map((p) => getAttr(i, p)) : [i]).map((k) => ignoreCase(k, caseSensitive)));
    const keyed = (a: RV, b: RV): number => (pyLt(key(a), key(b)) ? -1 : pyLt(key(b), key(a)) ? 1 : 0);
    return arr(pySorted(items(x, 'sort'), keyed, !!reverse && truthy(reverse)));
  },
  string: (x) => str(pyStr(x)),
  sum: (x, args) => {
    const [pos, kw] = splitKw(args);
    const attribute = arg(pos, kw, 0, 'attribute');
    const start = arg(pos, kw, 1, 'start');
    let total = start ? Number(start.value) : 0;
    let isFloat = start?.type === 'FloatValue';
    for (const i of items(x, 'sum')) {
      const v = attribute && !isUndef(attribute) ? getAttr(i, pyStr(attribute)) : i;
      if (v.type === 'FloatValue') isFloat = true;
      total += Number(v.value);
    }
    return isFloat ? float(total) : int(total);
  },
  title: (x) => str(pyStr(x).replace(/[A-Za-z]+('[A-Za-z]+)?/g, (w) => w.charAt(0).toUpperCase() + w.slice(1).toLowerCase())),
  tojson: (x) => str(JSON.stringify(toJs(x))),
  trim: (x, args) => {
    const chars = splitKw(args)[0][0];
    return str(stripChars(pyStr(x), chars ? pyStr(chars) : undefined, true, true));
  },
  truncate: (x, args) => {
    // jinja2.filters.do_truncate with the default policy leeway of 5
    const [pos, kw] = splitKw(args);
    const length = asInt(arg(pos, kw, 0, 'length'), 'truncate', 255);
    const killwords = arg(pos, kw, 1, 'killwords');
    const end = pyStr(arg(pos, kw, 2, 'end') ?? str('...'));
    const leewayArg = arg(pos, kw, 3, 'leeway');
    const leeway = leewayArg && leewayArg.type !== 'NullValue' ? asInt(leewayArg, 'truncate') : 5;
    const cps = Array.from(pyStr(x));
    const endLen = Array.from(end).length;
    if (cps.length <= length + leeway) return str(cps.join(''));
    if (killwords && truthy(killwords)) return str(cps.slice(0, length - endLen).join('') + end);
    const head = cps.slice(0, length - endLen).join('');
    const cut = head.lastIndexOf(' ');
    return str((cut === -1 ? head : head.slice(0, cut)) + end);
  },
  unique: (x, args) => {
    const [pos, kw] = splitKw(args);
    const cs = arg(pos, kw, 0, 'case_sensitive');
    const attribute = arg(pos, kw, 1, 'attribute');
    return arr(uniqueBy(items(x, 'unique'), !!cs && truthy(cs), attribute && !isUndef(attribute) ? pyStr(attribute) : undefined));
  },
  upper: (x) => str(pyStr(x).toUpperCase()),
  wordcount: (x) => int((pyStr(x).match(/\w+/gu) ?? []).length),
};
// getattr only: a dict's keys are items, not attributes
FILTERS.attr = (x, args) => (x.type === 'NamespaceValue' ? getAttr(x, pyStr(args[0] ?? str(''))) : undef());
FILTERS.batch = (x, args) => {
  const [pos, kw] = splitKw(args);
  const n = asInt(arg(pos, kw, 0, 'linecount'), 'batch');
  const fill = arg(pos, kw, 1, 'fill_with');
  const list = items(x, 'batch');
  const out: RV[] = [];
  for (let i = 0; i < list.length; i += n) {
    const chunk = list.slice(i, i + n);
    if (fill && fill.type !== 'NullValue') while (chunk.length < n) chunk.push(fill);
    out.push(arr(chunk));
  }
  return arr(out);
};
FILTERS.center = (x, args) => {
  const s = pyStr(x);
  const width = asInt(splitKw(args)[0][0], 'center', 80);
  if (s.length >= width) return str(s);
  // Python's str.center puts the odd space on the right when the padding is odd and len(s) even
  const total = width - s.length;
  const left = Math.floor(total / 2) + (total % 2 && width % 2 ? 1 : 0);
  return str(' '.repeat(left) + s + ' '.repeat(total - left));
};
FILTERS.dictsort = (x, args) => {
  if (!isMap(x)) throw new TemplateError('dictsort expects a dict');
  const [pos, kw] = splitKw(args);
  const cs = arg(pos, kw, 0, 'case_sensitive');
  const by = arg(pos, kw, 1, 'by');
  const reverse = arg(pos, kw, 2, 'reverse');
  const pairs = [...x.value].map(([k, v]) => tuple([str(k), v]));
  const idx = by && pyStr(by) === 'value' ? 1 : 0;
  const cmp = (a: RV, b: RV): number => compare((a.value as RV[])[idx], (b.value as RV[])[idx], !!cs && truthy(cs));
  return arr(pySorted(pairs, cmp, !!reverse && truthy(reverse)));
};
FILTERS.indent = (x, args) => {
  const [pos, kw] = splitKw(args);
  const w = arg(pos, kw, 0, 'width');
  const pad = w && isStr(w) ? w.value : ' '.repeat(asInt(w, 'indent', 4));
  const first = arg(pos, kw, 1, 'first');
  const blank = arg(pos, kw, 2, 'blank');
  const lines = pyStr(x).split('\n');
  return str(lines.map((l, i) => ((i === 0 && !(first && truthy(first))) || (l === '' && !(blank && truthy(blank))) ? l : pad + l)).join('\n'));
};
FILTERS.items = (x) => (isUndef(x) ? arr([]) : isMap(x) ? arr([...x.value].map(([k, v]) => tuple([str(k), v]))) : (() => {
  throw new TemplateError('items expects a dict');
})());
FILTERS.pprint = (x) => str(pyRepr(x));
FILTERS.slice = (x, args) => {
  const [pos, kw] = splitKw(args);
  const n = asInt(arg(pos, kw, 0, 'slices'), 'slice');
  const fill = arg(pos, kw, 1, 'fill_with');
  const list = items(x, 'slice');
  const per = Math.floor(list.length / n);
  const extra = list.length % n;
  const out: RV[] = [];
  let offset = 0;
  for (let i = 0; i < n; i++) {
    const size = per + (i < extra ? 1 : 0);
    const chunk = list.slice(offset, offset + size);
    offset += size;
    if (fill && fill.type !== 'NullValue' && i >= extra) chunk.push(fill);
    out.push(arr(chunk));
  }
  return arr(out);
};
FILTERS.striptags = (x) => str(pyStr(x).replace(/<!--[\s\S]*?-->|<[^>]*>/g, '').replace(/\s+/g, ' ').trim());
FILTERS.d = FILTERS.default;
FILTERS.e = (x) => str(pyStr(x).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&#34;').replace(/'/g, '&#39;'));
FILTERS.escape = FILTERS.e;

function minMax(x: RV, args: RV[], sign: 1 | -1): RV {
  const [pos, kw] = splitKw(args);
  const cs = arg(pos, kw, 0, 'case_sensitive');
  const attribute = arg(pos, kw, 1, 'attribute');
  const list = items(x, sign > 0 ? 'max' : 'min');
  if (list.length === 0) return undef();
  const key = (i: RV): RV => (attribute && !isUndef(attribute) ? getAttr(i, pyStr(attribute)) : i);
  let best = list[0];
  for (const i of list.slice(1)) if (sign * compare(key(i), key(best), !!cs && truthy(cs)) > 0) best = i;
  return best;
}

function pyReplace(s: string, old: string, rep: string, count: number): string {
  if (count < 0) return old === '' ? Array.from(s).map((c) => rep + c).join('') + rep : s.split(old).join(rep);
  let out = '';
  let rest = s;
  for (let n = 0; n < count; n++) {
    const i = rest.indexOf(old);
    if (i === -1) break;
    out += rest.slice(0, i) + rep;
    rest = rest.slice(i + old.length);
  }
  return out + rest;
}

/** Runtime value to plain data (for tojson and error messages). */
export function toJs(x: RV): unknown {
  if (isArr(x)) return x.value.map(toJs);
  if (isMap(x)) return Object.fromEntries([...x.value].map(([k, v]) => [k, toJs(v)]));
  if (isUndef(x)) return undefined;
  return x.value;
}

// ---------------------------------------------------------------------------------------------
// Methods on values, with Python semantics. Unknown names fall through to the library.

type Method = (self: RV, args: RV[]) => RV;

function strFormat(fmt: string, pos: RV[], kw: Map<string, RV>): string {
  let auto = 0;
  return fmt.replace(/\{\{|\}\}|\{([^{}]*)\}/g, (m, field: string | undefined) => {
    if (m === '{{') return '{';
    if (m === '}}') return '}';
    const [name, spec] = (field ?? '').split(':', 2);
    let v: RV | undefined;
    if (name === '') v = pos[auto++];
    else if (/^\d+$/.test(name)) v = pos[Number(name)];
    else v = kw.get(name);
    if (v === undefined) throw new TemplateError(`IndexError/KeyError in str.format: {${field}}`);
    if (spec && /^\.\d+f$/.test(spec)) return Number(v.value).toFixed(Number(spec.slice(1, -1)));
    return pyStr(v);
  });
}

const STR_METHODS: Record<string, Method> = {
  split: (s, a) => {
    const [pos, kw] = splitKw(a);
    const sep = arg(pos, kw, 0, 'sep');
    const max = asInt(arg(pos, kw, 1, 'maxsplit'), 'split', -1);
    return arr(pySplit(s.value as string, sep && sep.type !== 'NullValue' ? pyStr(sep) : undefined, max).map(str));
  },
  rsplit: (s, a) => {
    const [pos, kw] = splitKw(a);
    const sepArg = arg(pos, kw, 0, 'sep');
    const sep = sepArg && sepArg.type !== 'NullValue' ? pyStr(sepArg) : undefined;
    const max = asInt(arg(pos, kw, 1, 'maxsplit'), 'rsplit', -1);
    const parts = sep === undefined ? pySplit(s.value as string, undefined, -1) : (s.value as string).split(sep);
    if (max < 0 || parts.length <= max + 1) return arr(parts.map(str));
    // (with no separator the kept left part is re-joined with single spaces)
    const left = parts.slice(0, parts.length - max).join(sep ?? ' ');
    return arr([left, ...parts.slice(parts.length - max)].map(str));
  },
  strip: (s, a) => str(stripChars(s.value as string, a[0] && a[0].type !== 'NullValue' ? pyStr(a[0]) : undefined, true, true)),
  lstrip: (s, a) => str(stripChars(s.value as string, a[0] && a[0].type !== 'NullValue' ? pyStr(a[0]) : undefined, true, false)),
  rstrip: (s, a) => str(stripChars(s.value as string, a[0] && a[0].type !== 'NullValue' ? pyStr(a[0]) : undefined, false, true)),
  lower: (s) => str((s.value as string).toLowerCase()),
  upper: (s) => str((s.value as string).toUpperCase()),
  title: (s) => FILTERS.title(s, [], Math.random),
  capitalize: (s) => FILTERS.capitalize(s, [], Math.random),
  replace: (s, a) => str(pyReplace(s.value as string, pyStr(a[0]), pyStr(a[1]), asInt(a[2], 'replace', -1))),
  startswith: (s, a) => {
    const p = a[0];
    const prefixes = isArr(p) ? p.value.map(pyStr) : [pyStr(p)];
    return bool(prefixes.some((x) => (s.value as string).startsWith(x)));
  },
  endswith: (s, a) => {
    const p = a[0];
    const suffixes = isArr(p) ? p.value.map(pyStr) : [pyStr(p)];
    return bool(suffixes.some((x) => (s.value as string).endsWith(x)));
  },
  join: (s, a) => str(items(a[0], 'join').map((i) => asStr(i, 'str.join')).join(s.value as string)),
  format: (s, a) => {
    const [pos, kw] = splitKw(a);
    return str(strFormat(s.value as string, pos, kw));
  },
  find: (s, a) => int((s.value as string).indexOf(pyStr(a[0]))),
  index: (s, a) => {
    const i = (s.value as string).indexOf(pyStr(a[0]));
    if (i === -1) throw new TemplateError('ValueError: substring not found');
    return int(i);
  },
  count: (s, a) => {
    const sub = pyStr(a[0]);
    return int(sub === '' ? Array.from(s.value as string).length + 1 : (s.value as string).split(sub).length - 1);
  },
  isdigit: (s) => bool(/^\d+$/u.test(s.value as string)),
  isalpha: (s) => bool(/^\p{L}+$/u.test(s.value as string)),
  isnumeric: (s) => bool(/^\p{N}+$/u.test(s.value as string)),
  splitlines: (s) => arr((s.value as string).split(/\r\n|[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]/).filter((_, i, all) => i < all.length - 1 || all[i] !== '').map(str)),
  zfill: (s, a) => str((s.value as string).padStart(asInt(a[0], 'zfill'), '0')),
  casefold: (s) => str((s.value as string).toLowerCase()),
  swapcase: (s) => str(Array.from(s.value as string, (c) => (c === c.toUpperCase() ? c.toLowerCase() : c.toUpperCase())).join('')),
  isupper: (s) => bool(/\p{L}/u.test(s.value as string) && (s.value as string) === (s.value as string).toUpperCase()),
  islower: (s) => bool(/\p{L}/u.test(s.value as string) && (s.value as string) === (s.value as string).toLowerCase()),
  isspace: (s) => bool((s.value as string).length > 0 && pyStrip(s.value as string) === ''),
  isalnum: (s) => bool(/^[\p{L}\p{N}]+$/u.test(s.value as string)),
  ljust: (s, a) => str((s.value as string).padEnd(asInt(a[0], 'ljust'), a[1] ? pyStr(a[1]) : ' ')),
  rjust: (s, a) => str((s.value as string).padStart(asInt(a[0], 'rjust'), a[1] ? pyStr(a[1]) : ' ')),
  partition: (s, a) => {
    const sep = pyStr(a[0]);
    const t = s.value as string;
    const i = t.indexOf(sep);
    return tuple((i === -1 ? [t, '', ''] : [t.slice(0, i), sep, t.slice(i + sep.length)]).map(str));
  },
  rfind: (s, a) => int((s.value as string).lastIndexOf(pyStr(a[0]))),
};

const LIST_METHODS: Record<string, Method> = {
  append: (l, a) => {
    (l.value as RV[]).push(a[0]);
    return none();
  },
  extend: (l, a) => {
    (l.value as RV[]).push(...items(a[0], 'extend'));
    return none();
  },
  insert: (l, a) => {
    const list = l.value as RV[];
    let i = asInt(a[0], 'insert');
    if (i < 0) i = Math.max(0, list.length + i);
    list.splice(i, 0, a[1]);
    return none();
  },
  index: (l, a) => {
    const i = (l.value as RV[]).findIndex((x) => pyEq(x, a[0]));
    if (i === -1) throw new TemplateError(`ValueError: ${pyRepr(a[0])} is not in list`);
    return int(i);
  },
  count: (l, a) => int((l.value as RV[]).filter((x) => pyEq(x, a[0])).length),
  pop: (l, a) => {
    const list = l.value as RV[];
    if (list.length === 0) throw new TemplateError('IndexError: pop from empty list');
    let i = asInt(a[0], 'pop', -1);
    if (i < 0) i += list.length;
    if (i < 0 || i >= list.length) throw new TemplateError('IndexError: pop index out of range');
    return list.splice(i, 1)[0];
  },
  remove: (l, a) => {
    const list = l.value as RV[];
    const i = list.findIndex((x) => pyEq(x, a[0]));
    if (i === -1) throw new TemplateError('ValueError: list.remove(x): x not in list');
    list.splice(i, 1);
    return none();
  },
  reverse: (l) => {
    (l.value as RV[]).reverse();
    return none();
  },
  copy: (l) => arr([...(l.value as RV[])]),
  sort: (l, a) => {
    const [, kw] = splitKw(a);
    const rev = kw.get('reverse');
    const sorted = pySorted(l.value as RV[], (x, y) => compare(x, y), !!rev && truthy(rev));
    (l.value as RV[]).splice(0, sorted.length, ...sorted);
    return none();
  },
};

const DICT_METHODS: Record<string, Method> = {
  update: (d, a) => {
    const [pos, kw] = splitKw(a);
    const m = d.value as Map<string, RV>;
    if (pos[0]) {
      if (!isMap(pos[0])) throw new TemplateError('dict.update expects a dict');
      for (const [k, v] of pos[0].value) m.set(k, v);
    }
    for (const [k, v] of kw) m.set(k, v);
    return none();
  },
  pop: (d, a) => {
    const m = d.value as Map<string, RV>;
    const k = pyStr(a[0]);
    const v = m.get(k);
    if (v === undefined) {
      if (a.length > 1) return a[1];
      throw new TemplateError(`KeyError: ${reprStr(k)}`);
    }
    m.delete(k);
    return v;
  },
  get: (d, a) => (d.value as Map<string, RV>).get(pyStr(a[0])) ?? a[1] ?? none(),
  keys: (d) => arr([...(d.value as Map<string, RV>).keys()].map(str)),
  values: (d) => arr([...(d.value as Map<string, RV>).values()]),
  items: (d) => arr([...(d.value as Map<string, RV>)].map(([k, v]) => arr([str(k), v]))),
  copy: (d) => obj(new Map(d.value as Map<string, RV>)),
  setdefault: (d, a) => {
    const m = d.value as Map<string, RV>;
    const k = pyStr(a[0]);
    if (!m.has(k)) m.set(k, a[1] ?? none());
    return m.get(k)!;
  },
};

const METHOD_NAMES = new Set([...Object.keys(STR_METHODS), ...Object.keys(LIST_METHODS), ...Object.keys(DICT_METHODS)]);

function callMethod(self: RV, name: string, args: RV[]): RV {
  const table = isStr(self) ? STR_METHODS : isArr(self) ? LIST_METHODS : self.type === 'ObjectValue' ? DICT_METHODS : undefined;
  const m = table?.[name];
  if (m) return m(self, args);
  if (isMap(self)) {
    // an attribute that holds a function (namespace members, macros)
    const f = self.value.get(name);
    if (f && f.type === 'FunctionValue') return (f.value as (a: RV[], e: unknown) => RV)(args, undefined);
  }
  throw new TemplateError(`'${self.type.replace('Value', '').toLowerCase()}' object has no method '${name}'`);
}

function pyRange(args: RV[]): RV {
  const n = args.map((a) => asInt(a, 'range'));
  const [start, stop, step] = n.length === 1 ? [0, n[0], 1] : [n[0], n[1], n[2] ?? 1];
  if (step === 0) throw new TemplateError('ValueError: range() arg 3 must not be zero');
  const out: RV[] = [];
  for (let i = start; step > 0 ? i < stop : i > stop; i += step) out.push(int(i));
  return arr(out);
}

function pyZip(args: RV[]): RV {
  const lists = args.map((a) => items(a, 'zip'));
  const n = lists.length ? Math.min(...lists.map((l) => l.length)) : 0;
  const out: RV[] = [];
  for (let i = 0; i < n; i++) out.push(tuple(lists.map((l) => l[i])));
  return arr(out);
}

// ---------------------------------------------------------------------------------------------
// The syntax-tree rewrite

interface Node {
  type: string;
  [k: string]: unknown;
}

const STATEMENTS = new Set(['Set', 'If', 'For', 'Macro', 'Comment', 'Break', 'Continue', 'CallStatement', 'FilterStatement', 'StringLiteral']);

const ident = (value: string): Node => ({ type: 'Identifier', value });
const strLit = (value: string): Node => ({ type: 'StringLiteral', value });
const call = (callee: string, args: Node[]): Node => ({ type: 'CallExpression', callee: ident(callee), args });

function isNode(x: unknown): x is Node {
  return typeof x === 'object' && x !== null && typeof (x as Node).type === 'string';
}

/** Source-like text of an expression, for UndefinedError messages ("'answers' is undefined"). */
function describe(n: Node): string {
  if (n.type === 'Identifier') return n.value as string;
  if (n.type === 'CallExpression' && (n.callee as Node).value === '__getattr') {
    const [obj, key] = n.args as Node[];
    return `${describe(obj)}.${key.type === 'StringLiteral' ? (key.value as string) : '[...]'}`;
  }
  return 'value';
}

const BINOPS = new Set(['+', '-', '*', '/', '//', '%', '**', '<', '>', '<=', '>=', '~']);

function rewrite(n: Node, used: Set<string>): Node {
  // `{% set ns.attr = ... %}`: the target stays a member expression (the library assigns
  // namespace attributes itself); only the object it names is an expression to rewrite
  const assignee = n.type === 'Set' ? (n.assignee as Node) : undefined;
  if (assignee?.type === 'MemberExpression') assignee.object = rewrite(assignee.object as Node, used);
  // children first
  for (const [k, v] of Object.entries(n)) {
    if (k === 'type' || (k === 'assignee' && assignee?.type === 'MemberExpression')) continue;
    if (Array.isArray(v)) n[k] = v.map((c) => (isNode(c) ? rewrite(c, used) : c));
    else if (v instanceof Map) {
      const m = new Map<unknown, unknown>();
      for (const [a, b] of v) m.set(isNode(a) ? rewrite(a, used) : a, isNode(b) ? rewrite(b, used) : b);
      n[k] = m;
    } else if (isNode(v)) n[k] = rewrite(v, used);
  }
  if (n.type === 'FilterExpression') {
    const f = n.filter as Node;
    const name = f.type === 'Identifier' ? (f.value as string) : ((f.callee as Node).value as string);
    if (!FILTERS[name]) throw new TemplateError(`unsupported filter '${name}'`);
    used.add(name);
    const args = f.type === 'CallExpression' ? (f.args as Node[]) : [];
    return call(`__filter_${name}`, [n.operand as Node, strLit(describe(n.operand as Node)), ...args]);
  }
  if (n.type === 'CallExpression') {
    // `obj.name(...)`: the callee was already rewritten to __getattr(obj, "name", desc)
    const callee = n.callee as Node;
    if (callee.type === 'CallExpression' && (callee.callee as Node).value === '__getattr') {
      const [obj, key, desc] = callee.args as Node[];
      if (key.type === 'StringLiteral' && METHOD_NAMES.has(key.value as string)) {
        return call('__method', [obj, key, desc, ...(n.args as Node[])]);
      }
    }
  }
  if (n.type === 'MemberExpression' && (n.property as Node).type === 'SliceExpression') {
    const sl = n.property as Node;
    const part = (k: string): Node => (sl[k] as Node | undefined) ?? ident('none');
    return call('__slice', [n.object as Node, part('start'), part('stop'), part('step'), strLit(describe(n.object as Node))]);
  }
  if (n.type === 'MemberExpression') {
    const prop = n.property as Node;
    const key = n.computed ? prop : prop.type === 'IntegerLiteral' ? prop : strLit(prop.value as string);
    return call('__getattr', [n.object as Node, key, strLit(describe(n.object as Node))]);
  }
  if (n.type === 'For') {
    // `for x in xs if cond`: the library filters a SelectExpression itself; wrap its list.
    // `for a, b in pairs` unpacks lists only: tuples (zip, items) are handed over as lists.
    const unpack = ident((n.loopvar as Node).type === 'TupleLiteral' ? 'true' : 'false');
    const it = n.iterable as Node;
    if (it.type === 'SelectExpression') it.lhs = call('__iter', [it.lhs as Node, unpack]);
    else n.iterable = call('__iter', [it, unpack]);
  }
  if (n.type === 'BinaryExpression') {
    const op = (n.operator as { value: string }).value;
    if (op === 'in' || op === 'not in') {
      const test = call('__contains', [n.left as Node, n.right as Node]);
      return op === 'in' ? test : { type: 'UnaryExpression', operator: { type: 'UnaryOperator', value: 'not' }, argument: test };
    }
    // the library compares with JavaScript's loose ==: [] == [] is false, "" == 0 is true
    if (op === '==' || op === '!=') {
      const test = call('__eq', [n.left as Node, n.right as Node]);
      return op === '==' ? test : { type: 'UnaryExpression', operator: { type: 'UnaryOperator', value: 'not' }, argument: test };
    }
    if (BINOPS.has(op)) return call('__binop', [strLit(op), n.left as Node, n.right as Node]);
  }
  if (n.type === 'ObjectLiteral') {
    // the library allows string keys only; Python dicts take numbers and booleans too
    const entries = [...(n.value as Map<Node, Node>)];
    if (entries.some(([k]) => k.type !== 'StringLiteral')) return call('__dict', entries.flat());
  }
  if (n.type === 'FilterStatement') throw new TemplateError('{% filter %} blocks are not supported');
  // output expressions in statement bodies print Python's str()
  for (const key of ['body', 'alternate', 'defaultBlock']) {
    const list = n[key];
    if (Array.isArray(list)) n[key] = list.map((c: Node) => (STATEMENTS.has(c.type) ? c : call('__str', [c])));
  }
  return n;
}

export interface CompiledTemplate {
  render(context: Record<string, unknown>, rng: Rng): string;
}

/** Compiles Jinja2 source (Jinja2 defaults: no block trimming). Throws TemplateError. */
export function compileTemplate(source: string): CompiledTemplate {
  let program: Node;
  try {
    program = parse(tokenize(source, { lstrip_blocks: false, trim_blocks: false })) as unknown as Node;
  } catch (err) {
    // the parser reads past the last token of a block left open and fails with a TypeError
    const reason = err instanceof SyntaxError ? err.message : 'unexpected end of template (a {% if %} or {% for %} without its {% end... %}?)';
    throw new TemplateError(`template syntax error: ${reason}`);
  }
  const used = new Set<string>();
  program = rewrite(program, used);
  return {
    render(context, rng) {
      const env = new Environment();
      const globals: Record<string, RV> = {
        true: bool(true),
        false: bool(false),
        none: none(),
        True: bool(true),
        False: bool(false),
        None: none(),
        range: fn(pyRange),
        zip: fn(pyZip),
        __str: fn(([x]) => str(pyStr(x))),
        __method: fn(([self, name, desc, ...args]) => {
          if (isUndef(self)) throw new TemplateError(`UndefinedError: '${desc.value as string}' is undefined`);
          return callMethod(self, name.value as string, args);
        }),
        __getattr: fn(([obj, key, desc]) => getMember(obj, key, desc.value as string)),
        __iter: fn(([x, unpack]) => {
          if (isUndef(x)) return arr([]);
          if (!isArr(x)) return arr(items(x, 'for')); // a string's characters, a dict's keys
          if (truthy(unpack) && x.value.some((v) => v.type === 'TupleValue')) {
            return arr(x.value.map((v) => (v.type === 'TupleValue' ? arr(v.value as RV[]) : v)));
          }
          return x;
        }),
        __contains: fn(([needle, haystack]) => bool(pyContains(needle, haystack))),
        __eq: fn(([a, b]) => bool(pyEq(a, b))),
        __binop: fn(([op, a, b]) => pyBinop(op.value as string, a, b)),
        __slice: fn(([x, start, stop, step, desc]) => pySlice(x, [start, stop, step], desc.value as string)),
        __dict: fn((kv) => {
          const m = new Map<string, RV>();
          for (let i = 0; i + 1 < kv.length; i += 2) m.set(dictKey(kv[i]), kv[i + 1]);
          return obj(m);
        }),
      };
      for (const name of used) {
        globals[`__filter_${name}`] = fn(([x, desc, ...args]) => {
          if (isUndef(x) && FAIL_ON_UNDEFINED.has(name)) throw new TemplateError(`UndefinedError: '${desc.value as string}' is undefined`);
          return FILTERS[name](x ?? undef(), args, rng);
        });
      }
      for (const [k, v] of Object.entries(globals)) env.variables.set(k, v as never);
      for (const [k, v] of Object.entries(context)) env.variables.set(k, toRV(v) as never);
      try {
        const result = new Interpreter(env).run(program as never) as unknown as RV;
        return result.value as string;
      } catch (err) {
        if (err instanceof TemplateError) throw err;
        throw new TemplateError((err as Error).message);
      }
    },
  };
}
