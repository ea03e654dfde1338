// The production dependencies of an installed package, found the way Node finds them (node_modules
// folders from the requiring package up), so the same code bundles a checkout (dev tools sit beside
// them in node_modules and are left out), a global install and a hoisted project install. Each one
// gets a place in the bundle's node_modules where Node resolves it from every package that needs it.
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { UitError } from '../errors.js';

export interface PackageJson {
  name: string;
  version: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  [key: string]: unknown;
}

export interface DepPackage {
  name: string;
  version: string;
  /** Where it is on this machine (real path). */
  source: string;
  /** Where it goes in the bundle, relative to the package root: `node_modules/x` or nested. */
  dest: string;
}

export function readPackageJson(dir: string): PackageJson {
  return JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as PackageJson;
}

/** Node's lookup of a bare package name from a package folder: ./node_modules, then each parent's. */
function locate(fromDir: string, name: string): string | null {
  for (let dir = fromDir; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return realpathSync(candidate);
    if (dirname(dir) === dir) return null;
  }
}

function isInside(dir: string, root: string): boolean {
  const rel = relative(root, dir);
  return rel !== '' && !rel.startsWith('..') && !rel.startsWith(sep);
}

/** The same lookup inside the bundle's layout (dest paths), to check the placement. */
function locateDest(placed: Map<string, DepPackage>, fromDest: string, name: string): DepPackage | undefined {
  for (let dir = fromDest; ; dir = dirname(dir) === '.' ? '' : dirname(dir)) {
    const hit = placed.get(join(dir, 'node_modules', name));
    if (hit) return hit;
    if (dir === '') return undefined;
  }
}

function depNames(pkg: PackageJson): { name: string; optional: boolean }[] {
  const optional = Object.keys(pkg.optionalDependencies ?? {});
  const required = Object.keys(pkg.dependencies ?? {}).filter((n) => !optional.includes(n));
  return [...required.map((name) => ({ name, optional: false })), ...optional.map((name) => ({ name, optional: true }))];
}

/**
 * Every package `root` needs at run time: its dependencies and optionalDependencies (those that are
 * installed), and theirs, without devDependencies. A required one that is missing is an error.
 */
export function productionClosure(rootArg: string): DepPackage[] {
  const root = realpathSync(rootArg);
  const bySource = new Map<string, DepPackage>();
  const byDest = new Map<string, DepPackage>();
  const edges: { fromDest: string; name: string; source: string }[] = [];
  const queue: { dir: string; dest: string; pkg: PackageJson }[] = [{ dir: root, dest: '', pkg: readPackageJson(root) }];
  while (queue.length > 0) {
    const { dir, dest: fromDest, pkg } = queue.shift()!;
    for (const { name, optional } of depNames(pkg)) {
      const source = locate(dir, name);
      if (source === null) {
        if (optional) continue;
        throw new UitError(
          `${name}, a dependency of ${pkg.name}, is not installed (looked in the node_modules folders from ${dir} up); ` +
            'run `npm ci` (or `npm install`) first',
        );
      }
      edges.push({ fromDest, name, source });
      if (bySource.has(source)) continue;
      const dep = readPackageJson(source);
      // Keep the layout it has under the root; a package from outside (a hoisted install) goes to
      // the top node_modules, or under the package that needs it when that name is taken.
      let dest = isInside(source, root) ? relative(root, source).split(sep).join('/') : join('node_modules', name);
      if (byDest.has(dest)) dest = join(fromDest, 'node_modules', name);
      const placed: DepPackage = { name, version: dep.version, source, dest };
      bySource.set(source, placed);
      byDest.set(dest, placed);
      queue.push({ dir: source, dest, pkg: dep });
    }
  }
  for (const e of edges) {
    const got = locateDest(byDest, e.fromDest, e.name);
    if (got?.source !== e.source) {
      throw new UitError(
        `cannot lay out the dependencies: ${e.name} required from ${e.fromDest || 'the package root'} would resolve to ` +
          `${got?.source ?? 'nothing'} instead of ${e.source}`,
      );
    }
  }
  return [...bySource.values()].sort((a, b) => (a.dest < b.dest ? -1 : a.dest > b.dest ? 1 : 0));
}
