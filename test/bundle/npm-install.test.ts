// `npm install -g` of uit with no network and no flags, as a fresh user (own HOME, npm cache and
// global prefix; nothing from the npm that runs these tests): from the package `uit bundle --npm`
// writes, and from a registry mirror that holds that package. Every dependency is inside it, so npm
// fetches nothing else, and onnxruntime-node's CUDA download never runs. Also: npm reads this
// project's own settings without a warning (npm ci used to warn about `onnxruntime-node-install`).
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundle, freshEnv, netlessPrefix, PKG, REPO, REQUIRE, run, SYSTEM_PATH, TARGET, tempDir } from './helpers.js';

const tmp = tempDir('uit-npm-install-test-');
afterAll(tmp.cleanup);
let pkgFile: string;
let entries: string[];
const net = netlessPrefix();
const skip = !net.prefix && !REQUIRE;
const needNet = () => {
  if (!net.prefix) throw new Error(`UIT_REQUIRE_SYSTEM_DEPS=1 but ${net.reason}`);
  return net.prefix;
};

beforeAll(() => {
  mkdirSync(join(tmp.dir, 'out'));
  pkgFile = bundle(['--npm'], join(tmp.dir, 'out')).file;
  entries = run(['tar', '-tzf', pkgFile]).stdout.split('\n').filter(Boolean);
}, 300_000);

describe('the npm package (uit bundle --npm)', () => {
  it('bundles every dependency, for this platform, and onnxruntime-node without its install script', () => {
    expect(basename(pkgFile)).toBe(`${PKG.name}-${PKG.version}-${TARGET}.tgz`);
    const read = (p: string) => JSON.parse(run(['tar', '-xzOf', pkgFile, `package/${p}`]).stdout) as Record<string, unknown>;
    const pkg = read('package.json');
    const source = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; optionalDependencies?: Record<string, string> };
    // every dependency, and the optional ones that are installed here (webgpu where it installed)
    const optional = Object.keys(source.optionalDependencies ?? {}).filter((n) => existsSync(join(REPO, 'node_modules', n, 'package.json')));
    expect((pkg.bundleDependencies as string[]).sort()).toEqual([...Object.keys(source.dependencies), ...optional].sort());
    expect(pkg).toMatchObject({ os: [process.platform], cpu: [process.arch] });
    expect(pkg).not.toHaveProperty('scripts');
    expect(pkg).not.toHaveProperty('devDependencies');
    expect((read('node_modules/onnxruntime-node/package.json').scripts as Record<string, string>).postinstall).toBeUndefined();
    // better-sqlite3's install script (run by npm up to 11) finds its addon here instead of downloading
    expect(entries).toContain(`package/node_modules/better-sqlite3/prebuilds/better-sqlite3-v${(read('node_modules/better-sqlite3/package.json') as { version: string }).version}-node-v${process.versions.modules}-${process.platform}-${process.arch}.tar.gz`);
  });

  it.skipIf(skip)(`installs with npm install -g FILE and no network, then runs uit --version, uit demo and uit doctor${skip ? ` (skipped: ${net.reason})` : ''}`, () => {
    const prefix = needNet();
    const home = join(tmp.dir, 'home');
    const gprefix = join(tmp.dir, 'global');
    const env = freshEnv(home, SYSTEM_PATH, { NPM_CONFIG_PREFIX: gprefix });
    const install = run([...prefix, 'npm', 'install', '-g', pkgFile], { cwd: tmp.dir, env });
    expect(install.code, install.stdout + install.stderr).toBe(0);
    expect(install.stdout + install.stderr).not.toMatch(/nuget|ENOTFOUND|EAI_AGAIN|onnxruntime-node-install/i);
    const ortBin = join(gprefix, 'lib/node_modules/uit/node_modules/onnxruntime-node/bin/napi-v6', process.platform, process.arch);
    expect(readdirSync(ortBin).filter((f) => f.includes('providers'))).toEqual([]);

    const work = join(tmp.dir, 'work');
    mkdirSync(work);
    const user = freshEnv(home, [join(gprefix, 'bin'), ...SYSTEM_PATH]);
    const version = run([...prefix, 'uit', '--version'], { cwd: work, env: user });
    expect(version.code, version.stderr).toBe(0);
    expect(version.stdout.trim()).toBe(PKG.version);
    const demo = run([...prefix, 'uit', 'demo'], { cwd: work, env: user });
    expect(demo.code, demo.stderr).toBe(0);
    expect(existsSync(join(work, 'uit-demo-out/provenance.jsonl'))).toBe(true);
    // npm changed none of the files it unpacked
    const doctor = run([...prefix, 'uit', 'doctor'], { cwd: work, env: user });
    expect(doctor.code, doctor.stderr).toBe(0);
    expect(doctor.stdout).toMatch(/^bundle +uit \S+ npm for \S+: all \d+ files match SHA256SUMS$/m);
  });

  it.skipIf(skip)('installs from a registry mirror that holds only uit: npm asks it for nothing else', () => {
    const prefix = needNet();
    const r = run([...prefix, process.execPath, join(__dirname, 'fixtures/mirror-install.mjs'), pkgFile, join(tmp.dir, 'mirror-home'), join(tmp.dir, 'mirror-global')], {
      env: { PATH: SYSTEM_PATH.join(':') },
    });
    const out = JSON.parse(r.stdout || '{}') as { error?: string; install: { code: number; output: string }; version: { code: number; stdout: string }; requests: string[] };
    expect(out.error, r.stderr).toBeUndefined();
    expect(out.install.code, out.install.output).toBe(0);
    expect(out.version).toMatchObject({ code: 0, stdout: `${PKG.version}\n` });
    // metadata asked for: uit's, and npm's own (its update notifier), no dependency's
    const packuments = out.requests.filter((u) => !u.includes('/-/') && u !== '/npm');
    expect(packuments).toEqual([`/${PKG.name}`]);
  });

  it('npm reads this project\'s settings without a warning, and keeps onnxruntime-node\'s download off by allowScripts', () => {
    const r = run(['npm', 'config', 'get', 'registry'], { cwd: REPO, env: freshEnv(join(tmp.dir, 'home-cfg'), SYSTEM_PATH) });
    expect(r.code).toBe(0);
    expect(r.stderr).not.toMatch(/Unknown (project|user|env|builtin|global) config/);
    const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { allowScripts: Record<string, boolean> };
    expect(pkg.allowScripts['onnxruntime-node']).toBe(false);
  });
});
