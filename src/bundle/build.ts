// `uit bundle`: everything uit needs on a machine that has no network, in one .tar.gz. Two kinds:
//   bundle  uit-VERSION-PLATFORM-ARCH.tar.gz: unpack anywhere, put its bin/ on PATH (docs/airgap.md);
//   npm     uit-VERSION-PLATFORM-ARCH.tgz: `npm install -g FILE` with no registry: every dependency
//           is inside (bundleDependencies), so npm fetches nothing and runs no download.
// Both hold the built code, the production dependencies with this platform's native binaries only,
// models/uit-tiny and any --model folders, and a manifest (bundle.json, SHA256SUMS) that
// `uit doctor` checks on the target.
import { execFileSync } from 'node:child_process';
import { accessSync, constants, createReadStream, existsSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join, posix, resolve } from 'node:path';
import { createHash } from 'node:crypto';
import { ExitCode, ModelError, OutputError, outputError, UitError } from '../errors.js';
import { writeFileAtomic, writing } from '../io/atomic.js';
import { trackTemp, untrackTemp } from '../io/live-temps.js';
import { removeStaleTemps } from '../io/stale.js';
import { createProgress } from '../progress.js';
import { inspectModelFolder } from '../runtime/model-folder.js';
import { productionClosure, readPackageJson, type PackageJson } from './deps.js';
import { type BundleInfo, formatSums, INFO_FILE, PACKAGE_ROOT, sha256, SUMS_FILE } from './manifest.js';
import { BETTER_SQLITE3_ADDON, CUDA_PROVIDER_FILES, keepFile, ORT_BIN, patchPackageJson, type Target } from './natives.js';
import { tarGzSync, TarGzWriter } from './tar.js';

export interface BundleOptions {
  /** `bundle` (unpack and run) or `npm` (install with npm -g). */
  kind?: 'bundle' | 'npm';
  /** Where the archive goes: a folder (named as above) or a file path. Default: the current folder. */
  out?: string;
  /** Include a Node runtime: true for the one running uit, or the path of a `node` binary. */
  withNode?: boolean | string;
  /** Include onnxruntime-node's CUDA provider, which must be installed here. */
  withCuda?: boolean;
  /** More model folders, each as models/<its folder name>. */
  models?: string[];
  /** The package to bundle (default: this installation). */
  root?: string;
  quiet?: boolean;
}

export interface BundleResult {
  file: string;
  sha256: string;
  /** The archive's size. */
  bytes: number;
  /** What it unpacks to. */
  unpackedBytes: number;
  files: number;
  info: BundleInfo;
}

interface Entry {
  path: string;
  source?: string;
  data?: Buffer;
  mode: number;
}

/** Files npm leaves out of a package, which a bundle leaves out too. */
const IGNORED = /^(\.git|\.svn|\.hg|\.DS_Store|\.npmrc|node_modules|npm-debug\.log|__pycache__|.*\.swp|.*\.orig)$/;

function modeOf(path: string): number {
  return statSync(path).mode & 0o111 ? 0o755 : 0o644;
}

/**
 * Every file under `dir`, as paths relative to it, '/'-separated. Links are followed (a model
 * folder often links its weights from elsewhere), each folder once, so a link loop ends.
 */
export function walk(dir: string, rel = '', seen = new Set<string>([realpathSync(dir)])): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(dir, rel)).sort()) {
    if (IGNORED.test(name)) continue;
    const r = rel === '' ? name : posix.join(rel, name);
    const st = statSync(join(dir, r));
    if (st.isDirectory()) {
      const real = realpathSync(join(dir, r));
      if (seen.has(real)) continue;
      seen.add(real);
      out.push(...walk(dir, r, seen));
    } else if (st.isFile()) out.push(r);
  }
  return out;
}

function filesOf(dir: string, into: string, keep: (rel: string) => boolean = () => true): Entry[] {
  return walk(dir)
    .filter(keep)
    .map((rel) => ({ path: posix.join(into, rel), source: join(dir, rel), mode: modeOf(join(dir, rel)) }));
}

/** The package's own files, as its package.json `files` says (npm's rules, less `models/`). */
function ownFiles(root: string, pkg: PackageJson): Entry[] {
  const entries = new Map<string, Entry>();
  const add = (rel: string) => entries.set(rel, { path: rel, source: join(root, rel), mode: modeOf(join(root, rel)) });
  for (const name of readdirSync(root)) if (name === 'package.json' || /^(README|LICEN[CS]E)/i.test(name)) add(name);
  for (const pattern of (pkg.files as string[] | undefined) ?? []) {
    if (pattern === 'models' || pattern.startsWith('models/')) continue; // models: only the ones asked for
    if (pattern.includes('*')) {
      const dir = posix.dirname(pattern);
      const re = new RegExp(`^${posix.basename(pattern).replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')}$`);
      if (!existsSync(join(root, dir))) continue;
      for (const name of readdirSync(join(root, dir)).sort()) {
        if (re.test(name) && statSync(join(root, dir, name)).isFile()) add(posix.join(dir, name));
      }
    } else if (existsSync(join(root, pattern))) {
      if (statSync(join(root, pattern)).isDirectory()) for (const e of filesOf(join(root, pattern), pattern)) entries.set(e.path, e);
      else add(pattern);
    }
  }
  return [...entries.values()];
}

function modelEntries(root: string, extra: string[]): { entries: Entry[]; models: string[] } {
  const dirs: { dir: string; name: string }[] = [];
  const embedded = join(root, 'models', 'uit-tiny');
  if (existsSync(embedded)) dirs.push({ dir: embedded, name: 'uit-tiny' });
  for (const d of extra) {
    const dir = resolve(d);
    if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new ModelError(`--model ${d}: no such folder`);
    inspectModelFolder(dir); // a clear error now, not on the air-gapped machine
    const name = basename(dir);
    const other = dirs.find((x) => x.name === name);
    if (other) {
      throw new UitError(`--model ${d}: the bundle already has a model named models/${name} (${other.dir}); rename one of the folders`, ExitCode.USAGE);
    }
    dirs.push({ dir, name });
  }
  return { entries: dirs.flatMap((m) => filesOf(m.dir, `models/${m.name}`)), models: dirs.map((m) => `models/${m.name}`) };
}

/** Libraries every glibc Linux has; a Node binary that needs others is not portable (e.g. Debian's, with libnode). */
const BASE_LIBS = /^(linux-vdso|linux-gate|libc|libm|libdl|libpthread|librt|libstdc\+\+|libgcc_s|ld-linux[-\w]*)\.so/;

interface NodeBinary {
  path: string;
  version: string;
  abi: string;
  license: string | null;
}

function nodeBinary(spec: true | string): NodeBinary {
  const path = spec === true ? process.execPath : resolve(spec);
  let facts: [string, string, string, string];
  try {
    facts = JSON.parse(
      execFileSync(path, ['-p', 'JSON.stringify([process.version, process.versions.modules, process.platform, process.arch])'], { encoding: 'utf8' }),
    ) as [string, string, string, string];
  } catch (err) {
    throw new UitError(`--with-node ${path}: cannot run it (${(err as Error).message.split('\n')[0]})`, ExitCode.USAGE);
  }
  const [version, abi, platform, arch] = facts;
  if (platform !== process.platform || arch !== process.arch || abi !== process.versions.modules) {
    throw new UitError(
      `--with-node ${path}: it is Node ${version} for ${platform}/${arch} (ABI ${abi}), but the native modules here are built ` +
        `for ${process.platform}/${process.arch} and ABI ${process.versions.modules} (Node ${process.version}); ` +
        `use a Node ${process.version.split('.')[0]} binary`,
      ExitCode.USAGE,
    );
  }
  if (process.platform === 'linux') {
    let ldd = '';
    try {
      ldd = execFileSync('ldd', [path], { encoding: 'utf8' });
    } catch {
      // no ldd (or a static binary): nothing to check
    }
    const foreign = ldd
      .split('\n')
      .map((l) => l.trim().split(/\s/)[0])
      .filter((lib) => lib && !lib.startsWith('/') && !BASE_LIBS.test(basename(lib)));
    if (foreign.length) {
      throw new UitError(
        `--with-node ${path}: it needs shared libraries the target may not have (${foreign.join(', ')}); ` +
          'use a Node from nodejs.org (--with-node PATH/bin/node), which needs only glibc and libstdc++',
        ExitCode.USAGE,
      );
    }
  }
  const licenses = [join(dirname(path), '..', 'LICENSE'), join(dirname(path), '..', 'share', 'doc', 'node', 'LICENSE'), '/usr/share/doc/nodejs/LICENSE'];
  return { path, version, abi, license: licenses.find((p) => existsSync(p)) ?? null };
}

/** The launcher: the bundled Node when there is one, else `node` from PATH. */
export function launcher(name: string): string {
  return `#!/bin/sh
# ${name}, from an unpacked bundle (docs/airgap.md): runs the bundle's own Node when it has one
# (made with --with-node), else \`node\` from PATH.
self=$(readlink -f "$0" 2>/dev/null || echo "$0")
root=$(cd "$(dirname "$self")/.." && pwd)
if [ -x "$root/node/bin/node" ]; then
  exec "$root/node/bin/node" "$root/bin/uit.js" "$@"
fi
if ! command -v node >/dev/null 2>&1; then
  echo "${name}: no Node.js on PATH; install Node 20 or newer, or use a bundle made with --with-node" >&2
  exit 127
fi
exec node "$root/bin/uit.js" "$@"
`;
}

/** prebuild-install's file name for the addon, which it takes from prebuilds/ before any download. */
function prebuildName(version: string): string {
  const glibc = process.platform !== 'linux' || Boolean((process.report?.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime);
  return `better-sqlite3-v${version}-node-v${process.versions.modules}-${process.platform}${glibc ? '' : 'musl'}-${process.arch}.tar.gz`;
}

/** package.json of the npm kind: every dependency bundled, this platform only, no dev scripts. */
function npmPackageJson(pkg: PackageJson, bundled: string[]): Buffer {
  const { scripts: _s, devDependencies: _d, allowScripts: _a, optionalDependencies, ...rest } = pkg;
  const optional = Object.fromEntries(Object.entries((optionalDependencies as Record<string, string> | undefined) ?? {}).filter(([n]) => bundled.includes(n)));
  const out = {
    ...rest,
    ...(Object.keys(optional).length ? { optionalDependencies: optional } : {}),
    bundleDependencies: bundled,
    os: [process.platform],
    cpu: [process.arch],
  };
  return Buffer.from(`${JSON.stringify(out, null, 2)}\n`);
}

export function bundleFileName(pkg: { name: string; version: string }, kind: 'bundle' | 'npm'): string {
  return `${pkg.name}-${pkg.version}-${process.platform}-${process.arch}.${kind === 'npm' ? 'tgz' : 'tar.gz'}`;
}

async function fileSha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export async function buildBundle(opts: BundleOptions = {}): Promise<BundleResult> {
  const kind = opts.kind ?? 'bundle';
  const root = resolve(opts.root ?? PACKAGE_ROOT);
  const pkg = readPackageJson(root);
  if (!existsSync(join(root, 'dist', 'cli.js'))) throw new UitError(`${root}/dist/cli.js is missing: run \`npm run build\` first`);
  if (kind === 'npm' && opts.withNode) throw new UitError('--with-node is for the unpack-and-run bundle: npm installs run on the Node that runs npm', ExitCode.USAGE);
  const target: Target = { platform: process.platform, arch: process.arch, withCuda: Boolean(opts.withCuda) };
  // SOURCE_DATE_EPOCH (reproducible-builds.org) makes the archive byte-for-byte repeatable
  const mtime = Number(process.env.SOURCE_DATE_EPOCH) || Math.floor(Date.now() / 1000);

  const deps = productionClosure(root);
  const ort = deps.find((d) => d.name === 'onnxruntime-node');
  if (opts.withCuda) {
    if (process.platform !== 'linux' || process.arch !== 'x64') throw new ModelError(`--with-cuda: onnxruntime-node has a CUDA provider for linux/x64 only, this is ${process.platform}/${process.arch}`);
    const missing = ort ? CUDA_PROVIDER_FILES.filter((f) => !existsSync(join(ort.source, ORT_BIN(target), f))) : [...CUDA_PROVIDER_FILES];
    if (missing.length) {
      const bin = ort ? join(ort.source, ORT_BIN(target)) : 'onnxruntime-node';
      throw new ModelError(
        `--with-cuda: the CUDA provider is not installed here (${missing.join(', ')} missing from ${bin}); install it first, ` +
          `on a machine with network: ${process.execPath} ${ort ? join(ort.source, 'script', 'install.js') : 'node_modules/onnxruntime-node/script/install.js'} --onnxruntime-node-install=cuda12`,
      );
    }
  }

  const entries: Entry[] = ownFiles(root, pkg);
  const { entries: modelFiles, models } = modelEntries(root, opts.models ?? []);
  entries.push(...modelFiles);
  const patched: BundleInfo['patched'] = [];
  for (const dep of deps) {
    for (const e of filesOf(dep.source, dep.dest, (rel) => keepFile(dep.name, rel, target))) {
      if (e.path === `${dep.dest}/package.json`) {
        const p = patchPackageJson(dep.name, JSON.parse(readFileSync(e.source!, 'utf8')) as Record<string, unknown>);
        if (p) {
          e.data = Buffer.from(`${JSON.stringify(p.pkg, null, 2)}\n`);
          patched.push({ file: e.path, note: p.note });
        }
      }
      entries.push(e);
    }
  }
  const sqlite = deps.find((d) => d.name === 'better-sqlite3');
  if (sqlite && !existsSync(join(sqlite.source, BETTER_SQLITE3_ADDON))) {
    throw new UitError(`${join(sqlite.source, BETTER_SQLITE3_ADDON)} is missing: better-sqlite3 is not built here (npm rebuild better-sqlite3)`);
  }

  let node: NodeBinary | null = null;
  if (kind === 'bundle') {
    entries.push({ path: 'bin/uit', data: Buffer.from(launcher(pkg.name)), mode: 0o755 });
    if (opts.withNode) {
      node = nodeBinary(opts.withNode);
      entries.push({ path: 'node/bin/node', source: node.path, mode: 0o755 });
      if (node.license) entries.push({ path: 'node/LICENSE', source: node.license, mode: 0o644 });
    }
  } else {
    // npm takes bundleDependencies from the root's own dependencies; theirs come along inside node_modules
    const direct = new Set([...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.optionalDependencies ?? {})]);
    const bundled = deps.filter((d) => direct.has(d.name) && d.dest === `node_modules/${d.name}`).map((d) => d.name);
    const i = entries.findIndex((e) => e.path === 'package.json');
    entries[i] = { path: 'package.json', data: npmPackageJson(pkg, bundled), mode: 0o644 };
    if (sqlite) {
      // npm up to 11 runs a bundled package's install script: better-sqlite3's takes this prebuilt
      // addon instead of downloading one (or compiling, which needs headers from the network).
      const addon = readFileSync(join(sqlite.source, BETTER_SQLITE3_ADDON));
      entries.push({ path: `${sqlite.dest}/prebuilds/${prebuildName(sqlite.version)}`, data: tarGzSync([{ path: BETTER_SQLITE3_ADDON, data: addon, mode: 0o755 }], mtime), mode: 0o644 });
    }
  }

  const seen = new Set<string>();
  for (const e of entries) {
    if (seen.has(e.path)) throw new UitError(`two files would go to ${e.path} in the bundle`);
    seen.add(e.path);
  }
  entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));

  const info: BundleInfo = {
    format: 'uit-bundle/1',
    kind,
    name: pkg.name,
    version: pkg.version,
    platform: process.platform,
    arch: process.arch,
    created: new Date(mtime * 1000).toISOString(),
    node: { version: node?.version ?? process.version, abi: process.versions.modules, bundled: node !== null },
    cuda: target.withCuda,
    models,
    patched,
  };

  const name = bundleFileName(pkg, kind);
  const out = resolve(opts.out ?? '.');
  const file = existsSync(out) && statSync(out).isDirectory() ? join(out, name) : out;
  // a folder that is not there or not writable: the OutputError (exit 8) of every output, up front
  if (opts.out?.endsWith('/') && file === out) throw new OutputError(out, 'no such folder');
  writing(file, () => accessSync(dirname(file), constants.W_OK));
  removeStaleTemps([file]); // what a killed run left
  const top = kind === 'npm' ? 'package' : name.replace(/\.tar\.gz$/, '');
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.${Date.now().toString(36)}.tmp`);
  const sizes = entries.map((e) => e.data?.length ?? statSync(e.source!).size);
  const total = sizes.reduce((a, b) => a + b, 0);
  const progress = createProgress({ label: 'bundle', total, quiet: opts.quiet, extraFormat: '{file}', payload: { file: '' } });
  const tar = new TarGzWriter(tmp, mtime);
  trackTemp(tmp); // removed by the CLI's signal handler on Ctrl-C or SIGTERM
  const sums: { path: string; sha256: string }[] = [];
  try {
    const dirs = new Set<string>([top]);
    for (const e of entries) for (let d = posix.dirname(e.path); d !== '.'; d = posix.dirname(d)) dirs.add(`${top}/${d}`);
    for (const d of [...dirs].sort()) await tar.addDir(d);
    for (const [i, e] of entries.entries()) {
      const hash = createHash('sha256');
      if (e.data) {
        hash.update(e.data);
        await tar.addFile(`${top}/${e.path}`, e.data, e.mode);
      } else {
        await tar.addFileFrom(`${top}/${e.path}`, e.source!, sizes[i], e.mode, (chunk) => hash.update(chunk));
      }
      sums.push({ path: e.path, sha256: hash.digest('hex') });
      progress.tick(sizes[i], { file: e.path.length > 40 ? `...${e.path.slice(-37)}` : e.path });
    }
    const infoData = Buffer.from(`${JSON.stringify(info, null, 2)}\n`);
    sums.push({ path: INFO_FILE, sha256: sha256(infoData) });
    await tar.addFile(`${top}/${INFO_FILE}`, infoData);
    await tar.addFile(`${top}/${SUMS_FILE}`, Buffer.from(formatSums(sums)));
    await tar.finish();
    progress.stop();
    renameSync(tmp, file);
  } catch (err) {
    progress.stop();
    tar.abort();
    rmSync(tmp, { force: true });
    throw outputError(file, err);
  } finally {
    untrackTemp(tmp);
  }
  const digest = await fileSha256(file);
  writeFileAtomic(`${file}.sha256`, `${digest}  ${basename(file)}\n`);
  return {
    file,
    sha256: digest,
    bytes: statSync(file).size,
    unpackedBytes: total,
    files: sums.length + 1,
    info,
  };
}
