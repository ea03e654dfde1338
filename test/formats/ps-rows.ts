// Synthetic dataset rows for PromptSource templates, for the differential test against Python's
// Jinja2. Most shared templates have no hand-made row, so the fields a template reads, and their
// shapes, are inferred from its syntax tree: `x.text` makes x a dict with a field `text`, `x[0]`
// and `for c in x` a list, `x == 1` an int, `x | round` a number, `x.split()` a string. Each
// variant then fills the shapes differently (full lists, empty values, floats, one item), so the
// comparison reaches list and dict equality, float printing and rounding, and empty values
// (and 'none': every field None, a missing value).
import { parse, tokenize } from '@huggingface/jinja';

type Kind = 'any' | 'str' | 'int' | 'num' | 'bool' | 'list' | 'dict';

export interface Shape {
  kind: Kind;
  fields: Map<string, Shape>;
  item: Shape | null;
}

interface Node {
  type: string;
  [k: string]: unknown;
}

const newShape = (): Shape => ({ kind: 'any', fields: new Map(), item: null });

// a later, more specific use wins: a dict or list over a scalar, an int over a string
const RANK: Record<Kind, number> = { any: 0, str: 1, bool: 2, num: 3, int: 4, list: 5, dict: 6 };
function need(s: Shape | null, kind: Kind): void {
  if (s && RANK[kind] > RANK[s.kind]) s.kind = kind;
}
function itemOf(s: Shape): Shape {
  need(s, 'list');
  return (s.item ??= newShape());
}
function fieldOf(s: Shape, name: string): Shape {
  need(s, 'dict');
  let f = s.fields.get(name);
  if (!f) s.fields.set(name, (f = newShape()));
  return f;
}

const GLOBALS = new Set(['range', 'zip', 'namespace', 'loop', 'true', 'false', 'none', 'True', 'False', 'None', 'answer_choices', 'dict', 'lipsum', 'cycler', 'joiner']);
const STR_METHODS = new Set(['split', 'rsplit', 'strip', 'lstrip', 'rstrip', 'lower', 'upper', 'title', 'capitalize', 'replace', 'startswith', 'endswith', 'find', 'rfind', 'index', 'count', 'isdigit', 'isalpha', 'splitlines', 'format', 'join', 'partition', 'zfill']);
const LIST_METHODS = new Set(['append', 'extend', 'insert', 'pop', 'remove', 'reverse', 'sort', 'copy']);
const DICT_METHODS = new Set(['items', 'keys', 'values', 'get', 'update', 'setdefault']);
const LIST_FILTERS = new Set(['join', 'first', 'last', 'list', 'sort', 'unique', 'choice', 'random', 'most_frequent', 'select', 'reject', 'selectattr', 'rejectattr', 'map', 'sum', 'max', 'min', 'batch', 'slice']);
const ITEM_FILTERS = new Set(['first', 'last', 'choice', 'random', 'max', 'min']);
const NUM_FILTERS = new Set(['round', 'abs']);
const STR_FILTERS = new Set(['lower', 'upper', 'trim', 'capitalize', 'title', 'wordcount', 'replace', 'truncate', 'striptags', 'center', 'indent']);

class Inference {
  readonly roots = new Map<string, Shape>();

  root(name: string): Shape {
    let s = this.roots.get(name);
    if (!s) this.roots.set(name, (s = newShape()));
    return s;
  }

  /** The shape of the data an expression denotes (null for computed values). */
  expr(n: Node | undefined | null, scope: Map<string, Shape | null>): Shape | null {
    if (!n) return null;
    switch (n.type) {
      case 'Identifier': {
        const name = n.value as string;
        if (scope.has(name)) return scope.get(name)!;
        return GLOBALS.has(name) ? null : this.root(name);
      }
      case 'MemberExpression': {
        const obj = this.expr(n.object as Node, scope);
        const prop = n.property as Node;
        if (!n.computed) return obj ? fieldOf(obj, prop.value as string) : null;
        if (prop.type === 'StringLiteral') return obj ? fieldOf(obj, prop.value as string) : null;
        if (prop.type === 'SliceExpression') {
          for (const k of ['start', 'stop', 'step']) need(this.expr(prop[k] as Node, scope), 'int');
          return null; // a string or a list: printed either way
        }
        need(this.expr(prop, scope), 'int');
        return obj ? itemOf(obj) : null;
      }
      case 'CallExpression': {
        const callee = n.callee as Node;
        const args = n.args as Node[];
        const argShapes = args.map((a) => this.expr(a.type === 'KeywordArgumentExpression' ? (a.value as Node) : a, scope));
        if (callee.type === 'MemberExpression' && !callee.computed) {
          const obj = this.expr(callee.object as Node, scope);
          const m = (callee.property as Node).value as string;
          if (DICT_METHODS.has(m)) {
            need(obj, 'dict');
            if (m === 'get' && obj && args[0]?.type === 'StringLiteral') return fieldOf(obj, args[0].value as string);
          } else if (LIST_METHODS.has(m)) need(obj, 'list');
          else if (STR_METHODS.has(m)) need(obj, 'str');
          return null;
        }
        if (callee.type === 'Identifier' && callee.value === 'zip') argShapes.forEach((s) => need(s, 'list'));
        if (callee.type === 'Identifier' && callee.value === 'range') argShapes.forEach((s) => need(s, 'int'));
        this.expr(callee, scope);
        return null;
      }
      case 'FilterExpression': {
        const operand = this.expr(n.operand as Node, scope);
        const f = n.filter as Node;
        const name = (f.type === 'Identifier' ? f.value : (f.callee as Node).value) as string;
        if (f.type === 'CallExpression') for (const a of f.args as Node[]) this.expr(a, scope);
        if (LIST_FILTERS.has(name)) need(operand, 'list');
        else if (NUM_FILTERS.has(name)) need(operand, 'num');
        else if (STR_FILTERS.has(name)) need(operand, 'str');
        return operand && ITEM_FILTERS.has(name) ? itemOf(operand) : null;
      }
      case 'BinaryExpression': {
        const op = (n.operator as { value: string }).value;
        const l = this.expr(n.left as Node, scope);
        const r = this.expr(n.right as Node, scope);
        const lit = (x: Node): Kind | null =>
          x.type === 'IntegerLiteral' ? 'int' : x.type === 'FloatLiteral' ? 'num' : x.type === 'StringLiteral' ? 'str' : null;
        if (['==', '!=', '<', '>', '<=', '>='].includes(op)) {
          const lk = lit(n.right as Node);
          const rk = lit(n.left as Node);
          if (lk) need(l, lk);
          if (rk) need(r, rk);
        } else if (['-', '*', '/', '//', '%', '**'].includes(op)) {
          need(l, 'int');
          need(r, 'int');
        } else if (op === 'in' || op === 'not in') {
          const right = n.right as Node;
          if (right.type === 'ArrayLiteral' || right.type === 'TupleLiteral') {
            const k = lit((right.value as Node[])[0] ?? { type: '' });
            if (k) need(l, k);
          } else if ((n.left as Node).type === 'StringLiteral') need(r, 'str');
        }
        return null;
      }
      case 'TestExpression':
        this.expr(n.operand as Node, scope);
        return null;
      case 'Ternary':
        this.expr(n.condition as Node, scope);
        return this.expr(n.trueExpr as Node, scope) ?? this.expr(n.falseExpr as Node, scope);
      case 'SelectExpression':
        this.expr(n.test as Node, scope);
        return this.expr(n.lhs as Node, scope);
      default:
        this.children(n, scope);
        return null;
    }
  }

  children(n: Node, scope: Map<string, Shape | null>): void {
    for (const [k, v] of Object.entries(n)) {
      if (k === 'type') continue;
      const list = Array.isArray(v) ? v : v instanceof Map ? [...v.keys(), ...v.values()] : [v];
      for (const c of list) if (c && typeof c === 'object' && typeof (c as Node).type === 'string') this.expr(c as Node, scope);
    }
  }

  body(nodes: Node[], scope: Map<string, Shape | null>): void {
    for (const n of nodes) this.statement(n, scope);
  }

  statement(n: Node, scope: Map<string, Shape | null>): void {
    switch (n.type) {
      case 'If':
        this.expr(n.test as Node, scope);
        this.body(n.body as Node[], scope);
        this.body(n.alternate as Node[], scope);
        return;
      case 'For': {
        const inner = new Map(scope);
        let it = n.iterable as Node;
        if (it.type === 'SelectExpression') {
          this.expr(it.test as Node, inner);
          it = it.lhs as Node;
        }
        const loopvar = n.loopvar as Node;
        const names = loopvar.type === 'TupleLiteral' ? (loopvar.value as Node[]).map((x) => x.value as string) : [loopvar.value as string];
        const callee = it.type === 'CallExpression' ? (it.callee as Node) : null;
        if (callee?.type === 'Identifier' && callee.value === 'zip') {
          const lists = (it.args as Node[]).map((a) => this.expr(a, scope));
          names.forEach((name, i) => inner.set(name, lists[i] ? itemOf(lists[i]!) : null));
        } else if (callee?.type === 'MemberExpression' && (callee.property as Node).value === 'items') {
          const d = this.expr(callee.object as Node, scope);
          need(d, 'dict');
          names.forEach((name) => inner.set(name, null));
        } else {
          const list = this.expr(it, scope);
          const item = list && (it.type !== 'CallExpression' || callee?.type !== 'Identifier') ? itemOf(list) : null;
          if (names.length === 1) inner.set(names[0], item);
          else names.forEach((name) => inner.set(name, item ? itemOf(item) : null));
        }
        this.body(n.body as Node[], inner);
        this.body((n.defaultBlock as Node[]) ?? [], scope);
        return;
      }
      case 'Set': {
        const value = (n.value as Node | null) ?? null;
        const s = value ? this.expr(value, scope) : (this.body((n.body as Node[]) ?? [], scope), null);
        const target = n.assignee as Node;
        if (target.type === 'Identifier') scope.set(target.value as string, s);
        else if (target.type === 'TupleLiteral') for (const t of target.value as Node[]) scope.set(t.value as string, null);
        return;
      }
      case 'Macro': {
        const inner = new Map(scope);
        for (const a of n.args as Node[]) inner.set((a.type === 'KeywordArgumentExpression' ? (a.key as Node).value : a.value) as string, null);
        this.body(n.body as Node[], inner);
        return;
      }
      case 'Comment':
        return;
      default:
        this.expr(n, scope);
    }
  }
}

/** The fields (and their shapes) that a template and its answer_choices read. */
export function inferFields(sources: string[]): Map<string, Shape> {
  const inf = new Inference();
  for (const src of sources) {
    const program = parse(tokenize(src, { lstrip_blocks: false, trim_blocks: false })) as unknown as Node;
    inf.body(program.body as Node[], new Map());
  }
  return inf.roots;
}

/** A float written with a fraction (1.0 stays a float in both engines). */
export class PyFloat {
  constructor(readonly value: number) {}
}

export const VARIANTS = ['full', 'empty', 'float', 'one', 'none'] as const;
export type Variant = (typeof VARIANTS)[number];

const WORDS = ['The museum opened in 1998', 'a large garden', 'Ann missed the bus', 'ask |||  twice?', 'Ünïcode — “quotes”', "it's late"];

function value(s: Shape, name: string, v: Variant, depth: number, i: number): unknown {
  switch (s.kind) {
    case 'list': {
      const n = v === 'empty' ? 0 : v === 'one' ? 1 : v === 'float' ? 2 : 3;
      return Array.from({ length: n }, (_, j) => value(s.item ?? newShape(), name, v, depth + 1, i + j));
    }
    case 'dict':
      return Object.fromEntries([...s.fields].map(([k, f]) => [k, value(f, k, v, depth + 1, i)]));
    case 'int':
      return v === 'empty' ? 0 : v === 'float' ? new PyFloat(i % 3) : v === 'one' ? 0 : (1 + i) % 3;
    case 'num':
      return v === 'empty' ? new PyFloat(0) : v === 'float' ? new PyFloat([0.45, 2.675, 0.15, 0.05][i % 4]) : v === 'one' ? 3 : [2.5, 0.45, 1.25][i % 3];
    case 'bool':
      return v !== 'empty';
    default:
      if (v === 'empty') return '';
      if (v === 'float') return ['0.45', '2.675', ' 7 ', '1e3'][i % 4];
      if (v === 'one') return name;
      return `${WORDS[(name.length + i) % WORDS.length]} (${name})`;
  }
}

/** One synthetic row for the fields, in a variant. */
export function syntheticRow(fields: Map<string, Shape>, variant: Variant): Record<string, unknown> {
  if (variant === 'none') return Object.fromEntries([...fields.keys()].map((k) => [k, null]));
  return Object.fromEntries([...fields].map(([k, s], i) => [k, value(s, k, variant, 0, i)]));
}

/** JSON text of a value, floats with a fraction (so Python and parseRow read floats). */
export function toJsonText(x: unknown): string {
  if (x instanceof PyFloat) return Number.isInteger(x.value) ? `${x.value}.0` : JSON.stringify(x.value);
  if (Array.isArray(x)) return `[${x.map(toJsonText).join(',')}]`;
  if (x !== null && typeof x === 'object') return `{${Object.entries(x).map(([k, v]) => `${JSON.stringify(k)}:${toJsonText(v)}`).join(',')}}`;
  return JSON.stringify(x);
}
