// What a bundle says about itself, and the check that its files arrived intact. Two files at the
// package root: bundle.json (what was bundled, for which platform and Node ABI) and SHA256SUMS, in
// the format of coreutils' `sha256sum`, so a machine without uit can check a carry with
// `sha256sum -c SHA256SUMS` too. `uit doctor` runs the same check on the installation it runs from.
import { createHash } from 'node:crypto';
import { closeSync, existsSync, lstatSync, openSync, readdirSync, readFileSync, readSync } from 'node:fs';
import { join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { InputError } from '../errors.js';
import { INFO_FILE, SUMS_FILE } from './report.js';

export { INFO_FILE, SUMS_FILE } from './report.js';

/** The package root of this installation: next to dist/ (and to src/ when run from sources). */
export const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export const bundleInfoSchema = z.object({
  format: z.literal('uit-bundle/1'),
  /** bundle: unpack and run bin/uit; npm: install with `npm install -g FILE.tgz`. */
  kind: z.enum(['bundle', 'npm']),
  name: z.string(),
  version: z.string(),
  platform: z.string(),
  arch: z.string(),
  created: z.string(),
  /** The Node the native modules were built for; `bundled`: node/bin/node is in the bundle. */
  node: z.object({ version: z.string(), abi: z.string(), bundled: z.boolean() }),
  cuda: z.boolean(),
  models: z.array(z.string()),
  /** Files of dependencies that differ from the published package, and why. */
  patched: z.array(z.object({ file: z.string(), note: z.string() })),
});
export type BundleInfo = z.infer<typeof bundleInfoSchema>;

export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A file's sha256, read in chunks: a model's weights can be larger than a Buffer may be. */
export function sha256File(path: string): string {
  const hash = createHash('sha256');
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(4 * 2 ** 20);
    for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0; ) hash.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}

export function formatSums(entries: { path: string; sha256: string }[]): string {
  return [...entries]
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
    .map((e) => `${e.sha256}  ${e.path}\n`)
    .join('');
}

/** SHA256SUMS as `sha256sum` writes it; paths must stay inside the bundle. */
export function parseSums(text: string, file: string): Map<string, string> {
  const sums = new Map<string, string>();
  text.split('\n').forEach((line, i) => {
    if (line === '') return;
    const m = /^([0-9a-f]{64}) [ *](.+)$/.exec(line);
    const where = { file, line: i + 1 };
    if (!m) throw new InputError(where, 'expected "<64 hex digits>  <path>" as sha256sum writes it');
    const path = m[2];
    if (path.startsWith('/') || path.split('/').includes('..')) throw new InputError({ ...where, field: path }, 'path leaves the bundle');
    sums.set(path, m[1]);
  });
  return sums;
}

export interface InstallationCheck {
  root: string;
  info: BundleInfo | null;
  ok: boolean;
  /** Files listed in SHA256SUMS. */
  files: number;
  missing: string[];
  changed: string[];
  /** Files present but not listed (a CUDA provider installed later, a model added): not a failure. */
  extra: string[];
  /** Why it cannot run here, or why its manifest cannot be read: failures. */
  problems: string[];
}

function listFiles(root: string, dir = ''): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(root, dir), { withFileTypes: true })) {
    const rel = dir === '' ? e.name : posix.join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name !== '.bin') out.push(...listFiles(root, rel)); // npm's command links, made at install
    } else out.push(rel);
  }
  return out;
}

/**
 * Checks the installation at `root` against its SHA256SUMS and bundle.json: every listed file there
 * with its hash, and the platform and Node ABI the native modules were built for. Null when `root`
 * has no bundle.json (a checkout, or an npm install of a plain `npm pack`).
 */
export function checkInstallation(root: string = PACKAGE_ROOT): InstallationCheck | null {
  const infoPath = join(root, INFO_FILE);
  if (!existsSync(infoPath)) return null;
  const check: InstallationCheck = { root, info: null, ok: false, files: 0, missing: [], changed: [], extra: [], problems: [] };
  try {
    const parsed = bundleInfoSchema.safeParse(JSON.parse(readFileSync(infoPath, 'utf8')));
    if (parsed.success) check.info = parsed.data;
    else check.problems.push(`${infoPath}: not a uit bundle.json: ${parsed.error.issues[0]?.message ?? 'bad shape'}`);
  } catch (err) {
    check.problems.push(`${infoPath}: ${(err as Error).message}`);
  }
  const info = check.info;
  if (info) {
    if (info.platform !== process.platform || info.arch !== process.arch) {
      check.problems.push(`built for ${info.platform}/${info.arch}, this is ${process.platform}/${process.arch}`);
    }
    if (info.node.abi !== process.versions.modules) {
      check.problems.push(
        `built for Node ${info.node.version} (ABI ${info.node.abi}), running on Node ${process.version} (ABI ${process.versions.modules}): ` +
          `better-sqlite3 will not load; run it with Node ${info.node.version.split('.')[0]}, or use a bundle made with --with-node`,
      );
    }
  }
  let sums: Map<string, string>;
  try {
    sums = parseSums(readFileSync(join(root, SUMS_FILE), 'utf8'), join(root, SUMS_FILE));
  } catch (err) {
    check.problems.push((err as Error).message);
    return check;
  }
  check.files = sums.size;
  for (const [path, want] of sums) {
    const file = join(root, path);
    let got: string;
    try {
      if (!lstatSync(file).isFile()) throw new Error('not a file');
      got = sha256File(file);
    } catch {
      check.missing.push(path);
      continue;
    }
    if (got !== want) check.changed.push(path);
  }
  check.extra = listFiles(root).filter((p) => p !== SUMS_FILE && !sums.has(p));
  check.ok = check.problems.length === 0 && check.missing.length === 0 && check.changed.length === 0;
  return check;
}
