// `uit bundle`, as a user carries it: the archive is built with the real CLI, unpacked into an
// empty folder outside the checkout, and run with no network at all (`unshare -n`: any attempt to
// reach one fails) and a fresh HOME and XDG_CACHE_HOME: `uit demo`, `uit doctor`, and a model
// conversion of held-out Ni-v2 tasks. Its manifest catches a changed, missing or added file; a
// bundle with Node runs where no node is on PATH. Each bundle is built once for the file.
import { createHash } from 'node:crypto';
import { appendFileSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundle, freshEnv, HELD_OUT, netlessPrefix, PKG, REPO, REQUIRE, run, SYSTEM_PATH, TARGET, tempDir } from './helpers.js';

const NAME = `${PKG.name}-${PKG.version}-${TARGET}`;
const tmp = tempDir('uit-bundle-test-');
afterAll(tmp.cleanup);

let plain: ReturnType<typeof bundle>;
let withNode: ReturnType<typeof bundle>;
/** The plain bundle, unpacked. */
let root: string;
let entries: string[];

beforeAll(() => {
  mkdirSync(join(tmp.dir, 'plain'));
  mkdirSync(join(tmp.dir, 'node'));
  plain = bundle([], join(tmp.dir, 'plain'));
  withNode = bundle(['--with-node', '--model', join(REPO, 'test/fixtures/tiny-gptj')], join(tmp.dir, 'node'));
  const into = join(tmp.dir, 'unpacked');
  mkdirSync(into);
  expect(run(['tar', '-xzf', plain.file, '-C', into]).code).toBe(0);
  root = join(into, NAME);
  entries = run(['tar', '-tzf', plain.file]).stdout.split('\n').filter(Boolean);
}, 300_000);

describe('uit bundle', () => {
  it('writes uit-<version>-<platform>-<arch>.tar.gz, its sha256, and only what runs on this platform', () => {
    expect(basename(plain.file)).toBe(`${NAME}.tar.gz`);
    const digest = createHash('sha256').update(readFileSync(plain.file)).digest('hex');
    expect(plain.sha256).toBe(digest);
    expect(readFileSync(`${plain.file}.sha256`, 'utf8')).toBe(`${digest}  ${NAME}.tar.gz\n`);

    expect(entries.every((e) => e.startsWith(`${NAME}/`))).toBe(true);
    const has = (p: string) => entries.includes(`${NAME}/${p}`);
    for (const p of ['bin/uit', 'bin/uit.js', 'dist/cli.js', 'models/uit-tiny/tokenizer.json', 'examples/p3/imdb_Reviewer_Enjoyment_Yes_No.jsonl', 'bundle.json', 'SHA256SUMS']) {
      expect(has(p), p).toBe(true);
    }
    const ort = `${NAME}/node_modules/onnxruntime-node/bin/napi-v6/`;
    const ortFiles = entries.filter((e) => e.startsWith(ort) && !e.endsWith('/'));
    expect(ortFiles.length).toBeGreaterThan(0);
    // this platform's binaries only, and never the CUDA provider unless asked
    expect(ortFiles.every((e) => e.startsWith(`${ort}${process.platform}/${process.arch}/`)), ortFiles.join('\n')).toBe(true);
    expect(ortFiles.some((e) => e.includes('providers_cuda'))).toBe(false);
    const dawn = entries.filter((e) => e.startsWith(`${NAME}/node_modules/webgpu/dist/`) && !e.endsWith('/'));
    expect(dawn.every((e) => e.startsWith(`${NAME}/node_modules/webgpu/dist/${process.platform === 'darwin' ? 'darwin-universal' : TARGET}/`)), dawn.join('\n')).toBe(true);
    // the built addon, not better-sqlite3's C sources and build tree
    expect(has('node_modules/better-sqlite3/build/Release/better_sqlite3.node')).toBe(true);
    expect(entries.filter((e) => /better-sqlite3\/(deps|src)\/|\/obj(\.target)?\//.test(e))).toEqual([]);
    // production dependencies only
    for (const dev of ['vitest', 'typescript', 'playwright-core', '@huggingface/transformers']) expect(has(`node_modules/${dev}/package.json`), dev).toBe(false);
    expect(entries.some((e) => e.startsWith(`${NAME}/node/`))).toBe(false);
    const info = plain.info as { kind: string; node: { abi: string; bundled: boolean }; models: string[] };
    expect(info).toMatchObject({ kind: 'bundle', version: PKG.version, node: { abi: process.versions.modules, bundled: false }, models: ['models/uit-tiny'], cuda: false });
  });

  const net = netlessPrefix();
  it.skipIf(!net.prefix && !REQUIRE)(`runs from an empty folder with no network: demo, doctor, convert --method model${net.prefix ? '' : ` (skipped: ${net.reason})`}`, () => {
    if (!net.prefix) throw new Error(`UIT_REQUIRE_SYSTEM_DEPS=1 but ${net.reason}`);
    const work = join(tmp.dir, 'work');
    mkdirSync(work);
    for (const f of HELD_OUT) copyFileSync(f, join(work, basename(f)));
    const env = freshEnv(join(tmp.dir, 'home'), [join(root, 'bin'), ...SYSTEM_PATH]);
    const uit = (...args: string[]) => run([...net.prefix!, 'uit', ...args], { cwd: work, env });

    const demo = uit('demo');
    expect(demo.code, demo.stderr).toBe(0);
    expect(demo.stdout).toContain('Picked #');
    expect(existsSync(join(work, 'uit-demo-out/provenance.jsonl'))).toBe(true);
    // the default cache went to the fresh XDG_CACHE_HOME
    expect(existsSync(join(tmp.dir, 'home/.cache/uit/cache.sqlite'))).toBe(true);

    const doctor = uit('doctor');
    expect(doctor.code, doctor.stderr).toBe(0);
    expect(doctor.stdout).toMatch(/^bundle +uit \S+ bundle for \S+: all \d+ files match SHA256SUMS$/m);

    const conv = uit('convert', ...HELD_OUT.map((f) => basename(f)), '--to', 'niv2', '--method', 'model', '--model', join(root, 'models/uit-tiny'),
      '--num-candidates', '2', '--instances', '4', '--max-new-tokens', '24', '-o', 'out', '--json');
    expect(conv.code, conv.stderr).toBe(0);
    expect(JSON.parse(conv.stdout).tasks).toMatchObject({ ok: 2, failed: 0 });
    for (const f of HELD_OUT) {
      const task = JSON.parse(readFileSync(join(work, 'out', basename(f)), 'utf8')) as { Definition: string[] };
      expect(task.Definition.length).toBe(1);
    }
  });

  it('SHA256SUMS is what sha256sum -c checks; doctor names a changed and a missing file, and lists an added one', () => {
    expect(run(['sha256sum', '-c', '--quiet', 'SHA256SUMS'], { cwd: root }).code).toBe(0);
    const env = freshEnv(join(tmp.dir, 'home2'), [join(root, 'bin'), ...SYSTEM_PATH]);
    const doctor = () => run(['uit', 'doctor'], { cwd: tmp.dir, env });

    const cli = join(root, 'dist/cli.js');
    const tok = join(root, 'models/uit-tiny/tokenizer.json');
    const original = readFileSync(cli);
    appendFileSync(cli, '// changed after bundling\n');
    renameSync(tok, `${tok}.away`);
    try {
      const r = doctor();
      expect(r.code).toBe(4);
      expect(r.stderr).toContain('2 of');
      expect(r.stderr).toMatch(/changed: dist\/cli\.js/);
      expect(r.stderr).toMatch(/missing: models\/uit-tiny\/tokenizer\.json/);
      expect(run(['sha256sum', '-c', '--quiet', 'SHA256SUMS'], { cwd: root }).code).not.toBe(0);
    } finally {
      writeFileSync(cli, original);
      renameSync(`${tok}.away`, tok);
    }
    // without its own files the CLI cannot run doctor: it names the check that needs no uit
    const demo = join(root, 'dist/commands/demo.js');
    renameSync(demo, `${demo}.away`);
    try {
      const r = doctor();
      expect(r.code).toBe(4);
      expect(r.stderr).toContain(`files may be damaged; check them with: cd ${root}/ && sha256sum -c --quiet SHA256SUMS`);
    } finally {
      renameSync(`${demo}.away`, demo);
    }
    mkdirSync(join(root, 'models/added'));
    writeFileSync(join(root, 'models/added/notes.txt'), 'added on the target\n');
    const r = doctor();
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('not in SHA256SUMS (added after bundling; not checked): models/added/notes.txt');
  });

  it('a bundle for another Node ABI says so and exits 4, instead of failing to load its native modules', () => {
    const infoFile = join(root, 'bundle.json');
    const original = readFileSync(infoFile, 'utf8');
    const info = JSON.parse(original) as { node: { abi: string } };
    writeFileSync(infoFile, JSON.stringify({ ...info, node: { ...info.node, abi: '1' } }));
    try {
      const r = run([join(root, 'bin/uit'), '--version'], { env: freshEnv(join(tmp.dir, 'home3'), SYSTEM_PATH) });
      expect(r.code).toBe(4);
      expect(r.stderr).toContain(`(ABI 1), and this is Node ${process.version} (ABI ${process.versions.modules})`);
      expect(r.stderr).toContain('--with-node');
    } finally {
      writeFileSync(infoFile, original);
    }
  });

  it('--with-node runs where there is no node on PATH, and --model adds the folder', () => {
    const into = join(tmp.dir, 'with-node');
    mkdirSync(into);
    expect(run(['tar', '-xzf', withNode.file, '-C', into]).code).toBe(0);
    const dir = join(into, NAME);
    expect((withNode.info as { node: { bundled: boolean } }).node.bundled).toBe(true);
    expect(existsSync(join(dir, 'node/bin/node'))).toBe(true);
    expect(readdirSync(join(dir, 'models')).sort()).toEqual(['tiny-gptj', 'uit-tiny']);
    // a PATH with the launcher's few tools and no node at all
    const tools = join(tmp.dir, 'tools');
    mkdirSync(tools);
    for (const t of ['sh', 'dirname', 'readlink']) symlinkSync(run(['sh', '-c', `readlink -f "$(command -v ${t})"`]).stdout.trim(), join(tools, t));
    const env = freshEnv(join(tmp.dir, 'home4'), [tools, join(dir, 'bin')]);
    expect(run(['sh', '-c', 'command -v node || echo none'], { env }).stdout.trim()).toBe('none');
    const v = run([join(dir, 'bin/uit'), '--version'], { env });
    expect(v.code, v.stderr).toBe(0);
    expect(v.stdout.trim()).toBe(PKG.version);
    const doctor = run([join(dir, 'bin/uit'), 'doctor', '--model', join(dir, 'models/tiny-gptj')], { env });
    expect(doctor.code, doctor.stderr).toBe(0);
    expect(doctor.stdout).toContain('files match SHA256SUMS');
    expect(doctor.stdout).toContain('model ok');
    // the plain bundle, on the same PATH, says what is missing
    const none = run([join(root, 'bin/uit'), '--version'], { env });
    expect(none.code).toBe(127);
    expect(none.stderr).toContain('no Node.js on PATH');
  });

  it('refuses what it cannot bundle before writing anything', () => {
    const out = join(tmp.dir, 'refused');
    mkdirSync(out);
    const uit = (...args: string[]) => run([process.execPath, join(REPO, 'bin/uit.js'), 'bundle', ...args, '-o', out], { cwd: REPO });
    let r = uit('--model', join(tmp.dir, 'no-such-model'));
    expect([r.code, r.stderr]).toEqual([4, expect.stringContaining('no-such-model: no such folder')]);
    r = uit('--model', join(REPO, 'models/uit-tiny'));
    expect([r.code, r.stderr]).toEqual([2, expect.stringContaining('already has a model named models/uit-tiny')]);
    r = uit('--npm', '--with-node');
    expect(r.code).toBe(2);
    r = run([process.execPath, join(REPO, 'bin/uit.js'), 'bundle', '-o', join(out, 'missing/')], { cwd: REPO });
    expect([r.code, r.stderr]).toEqual([8, expect.stringContaining('missing: cannot write: no such folder')]);
    if (TARGET === 'linux-x64' && !existsSync(join(REPO, 'node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so'))) {
      r = uit('--with-cuda');
      expect(r.code).toBe(4);
      expect(r.stderr).toContain('--with-cuda: ');
      expect(r.stderr).toContain('--onnxruntime-node-install=cuda12');
    }
    expect(readdirSync(out)).toEqual([]);
  });

  it("the Dockerfile builds the image the Kubernetes examples name, from this version's bundle, as their user", () => {
    const dockerfile = readFileSync(join(REPO, 'Dockerfile'), 'utf8');
    expect(dockerfile).toContain(`ARG BUNDLE=${PKG.name}-${PKG.version}-linux-x64.tar.gz`);
    expect(dockerfile).toMatch(/^ARG BASE=debian:\w+-slim$/m);
    expect(dockerfile).toMatch(/apt-get install -y --no-install-recommends [^\n]*\blibvulkan1\b/);
    const user = /^USER (\d+):(\d+)$/m.exec(dockerfile);
    expect(user).not.toBeNull();
    expect(Number(user![1])).toBeGreaterThan(0);
    for (const doc of ['README.md', 'docs/pipeline.md']) {
      const text = readFileSync(join(REPO, doc), 'utf8');
      expect(text, doc).toContain(`image: registry.example.com/${PKG.name}:${PKG.version}`);
      expect(text, doc).toContain(`securityContext: { runAsNonRoot: true, runAsUser: ${user![1]}, fsGroup: ${user![2]} }`);
    }
  });
});
