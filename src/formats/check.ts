// Validation at the edge: every reader checks its records through a Checker, so each failure
// becomes an InputError naming the file, the line (from the located JSON parse) and the field.
import { InputError } from '../errors.js';
import type { LineLocator } from '../io/located-json.js';

export type FieldPath = ReadonlyArray<string | number>;

/** `["Instances", 3, "output"]` -> `Instances[3].output`. */
export function fieldName(path: FieldPath): string | undefined {
  if (path.length === 0) return undefined;
  let s = '';
  for (const p of path) s += typeof p === 'number' ? `[${p}]` : s === '' ? p : `.${p}`;
  return s;
}

export function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return 'a string';
  return `a ${typeof v}`;
}

export class Checker {
  /**
   * @param root the parsed document the paths start from
   * @param locator positions from parseLocatedJson (absent for JSON.parse'd lines)
   * @param baseLine the file line the document starts on (JSONL: its line)
   * @param prefix where the checked value sits inside `root` (e.g. its index in an array),
   *   prepended to every path for locating and naming
   * @param namePrefix prepended to field names instead (default `prefix`): an array element
   *   parsed on its own is located from itself but named `[i].field`
   */
  constructor(
    readonly file: string,
    readonly root: unknown,
    readonly locator?: LineLocator,
    readonly baseLine = 1,
    readonly prefix: FieldPath = [],
    readonly namePrefix: FieldPath = prefix,
  ) {}

  line(path: FieldPath): number | undefined {
    const rel = this.locator?.lineAt(this.root, [...this.prefix, ...path]);
    return rel === undefined ? this.baseLine : this.baseLine + rel - 1;
  }

  error(path: FieldPath, reason: string): InputError {
    return new InputError(
      { file: this.file, line: this.line(path), field: fieldName([...this.namePrefix, ...path]) },
      reason,
    );
  }

  fail(path: FieldPath, reason: string): never {
    throw this.error(path, reason);
  }

  obj(v: unknown, path: FieldPath): Record<string, unknown> {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(path, `expected an object, found ${typeName(v)}`);
    return v as Record<string, unknown>;
  }

  arr(v: unknown, path: FieldPath): unknown[] {
    if (!Array.isArray(v)) this.fail(path, `expected a list, found ${typeName(v)}`);
    return v;
  }

  str(v: unknown, path: FieldPath): string {
    if (typeof v !== 'string') this.fail(path, `expected a string, found ${typeName(v)}`);
    return v;
  }

  optStr(v: unknown, path: FieldPath): string | undefined {
    return v === undefined ? undefined : this.str(v, path);
  }

  strList(v: unknown, path: FieldPath): string[] {
    const a = this.arr(v, path);
    a.forEach((x, i) => this.str(x, [...path, i]));
    return a as string[];
  }

  /** A required member of an object. */
  field(o: Record<string, unknown>, key: string, path: FieldPath): unknown {
    if (!Object.prototype.hasOwnProperty.call(o, key)) this.fail([...path, key], 'missing field');
    return o[key];
  }
}
