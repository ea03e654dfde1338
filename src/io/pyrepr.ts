// Python's repr() of a str and of a list of str, as CPython 3 writes them (unicode_repr in
// Objects/unicodeobject.c). The UIT reference builds its scoring prompt with
// f"Definition: {data['Definition']}" where Definition is a list, so the prompt holds this text.
//
// The rules: the quote is ' unless the text holds a ' and no ", then "; a backslash and the chosen
// quote get a backslash; \t \n \r are written so; other characters below space and DEL as \xhh;
// printable ASCII as is; beyond ASCII, a printable character as is and any other as \xhh, \uhhhh
// or \Uhhhhhhhh (lower-case hex, the shortest that holds it). Not printable: the general categories
// Cc, Cf, Cs (a lone surrogate), Co, Cn (unassigned), Zl, Zp and Zs (space itself excepted), as
// str.isprintable() decides. Which code points are assigned follows this Node's Unicode version
// (process.versions.unicode); Python follows its own (3.11: 14.0), so a character assigned between
// the two prints as itself here and as an escape there: the only difference (test/io/pyrepr.test.ts).

const NOT_PRINTABLE = /^[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]$/u;

const hex = (cp: number, width: number): string => cp.toString(16).padStart(width, '0');

/** repr(s) for a Python str. */
export function pyReprStr(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (ch === quote || ch === '\\') out += '\\' + ch;
    else if (ch === '\t') out += '\\t';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (cp < 0x20 || cp === 0x7f) out += '\\x' + hex(cp, 2);
    else if (cp < 0x7f) out += ch;
    else if (!NOT_PRINTABLE.test(ch)) out += ch;
    else if (cp <= 0xff) out += '\\x' + hex(cp, 2);
    else if (cp <= 0xffff) out += '\\u' + hex(cp, 4);
    else out += '\\U' + hex(cp, 8);
  }
  return out + quote;
}

/** repr(list) for a Python list of str: `['a', "b's"]`. */
export function pyReprList(items: readonly string[]): string {
  return `[${items.map(pyReprStr).join(', ')}]`;
}
