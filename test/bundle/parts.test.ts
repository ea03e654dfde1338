// The pieces of `uit bundle` that the end-to-end tests cannot reach from this checkout: the tar
// writer on paths ustar cannot hold (read back by the system's tar), the dependency layout of a
// hoisted install (real package folders), and SHA256SUMS parsing.
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { walk } from '../../src/bundle/build.js';
import { productionClosure } from '../../src/bundle/deps.js';
import { parseSums } from '../../src/bundle/manifest.js';
import { keepFile } from '../../src/bundle/natives.js';
import { TarGzWriter } from '../../src/bundle/tar.js';
import { run, tempDir } from './helpers.js';

const tmp = tempDir('uit-bundle-parts-');
afterAll(tmp.cleanup);

describe('TarGzWriter', () => {
  it("writes what the system's tar reads back: long paths (prefix and pax), UTF-8, modes, empty files", async () => {
    const file = join(tmp.dir, 'a.tar.gz');
    const long = `top/${'d'.repeat(120)}/${'e'.repeat(60)}/file.txt`; // fits ustar only split at a '/'
    const huge = `top/${'x'.repeat(200)}/${'y'.repeat(120)}.txt`; // fits no split: a pax record
    const utf8 = 'top/données/é.txt';
    const w = new TarGzWriter(file, 1_700_000_000);
    await w.addDir('top');
    await w.addFile(long, Buffer.from('long\n'));
    await w.addFile(huge, Buffer.from('huge\n'));
    await w.addFile(utf8, Buffer.from('utf8\n'));
    await w.addFile('top/run.sh', Buffer.from('#!/bin/sh\necho hi\n'), 0o755);
    await w.addFile('top/empty', Buffer.alloc(0));
    await w.addFile('top/block', Buffer.alloc(512, 7)); // exactly one block: no padding
    await w.finish();
    const out = join(tmp.dir, 'out');
    mkdirSync(out);
    const r = run(['tar', '-xzf', file, '-C', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    expect(readFileSync(join(out, long), 'utf8')).toBe('long\n');
    expect(readFileSync(join(out, huge), 'utf8')).toBe('huge\n');
    expect(readFileSync(join(out, utf8), 'utf8')).toBe('utf8\n');
    expect(readFileSync(join(out, 'top/empty')).length).toBe(0);
    expect(readFileSync(join(out, 'top/block'))).toEqual(Buffer.alloc(512, 7));
    expect(run([join(out, 'top/run.sh')]).stdout).toBe('hi\n');
    const listing = run(['tar', '-tvzf', file]).stdout;
    expect(listing).toContain('2023-11-14'); // the mtime given, not the clock
    expect(listing).not.toMatch(/PaxHeader/);
  });
});

describe('TarGzWriter, streaming', () => {
  it('streams a file from disk, hashing every chunk, and gives a size over the ustar limit as a pax record', async () => {
    const src = join(tmp.dir, 'weights.bin');
    const data = Buffer.alloc(3000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7) % 251;
    writeFileSync(src, data);
    const file = join(tmp.dir, 'big.tar.gz');
    const w = new TarGzWriter(file, 1_700_000_000, 1000); // "over the limit" from 1000 bytes, to reach that path
    const seen: Buffer[] = [];
    await w.addFileFrom('m/weights.bin', src, data.length, 0o644, (c) => seen.push(Buffer.from(c)));
    await w.addFile('m/after.txt', Buffer.from('after\n'));
    await w.finish();
    expect(Buffer.concat(seen)).toEqual(data);
    const out = join(tmp.dir, 'big');
    mkdirSync(out);
    const r = run(['tar', '-xzf', file, '-C', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(join(out, 'm/weights.bin'))).toEqual(data);
    expect(readFileSync(join(out, 'm/after.txt'), 'utf8')).toBe('after\n');
  });
});

describe('TarGzWriter, failing', () => {
  it.skipIf(process.platform !== 'linux')('a write error (a full disk: /dev/full) ends the archive with that error instead of hanging', async () => {
    const w = new TarGzWriter('/dev/full', 1_700_000_000);
    const noise = Buffer.alloc(8 * 2 ** 20);
    for (let i = 0; i < noise.length; i++) noise[i] = (i * 2654435761) >>> 24; // hardly compressible
    const write = async () => {
      for (let i = 0; i < 4; i++) await w.addFile(`f${i}`, noise);
      await w.finish();
    };
    await expect(write()).rejects.toThrow(/ENOSPC/);
  });
});

describe('walk', () => {
  it('follows links to files and folders (weights linked from elsewhere), each folder once', () => {
    const d = join(tmp.dir, 'model');
    mkdirSync(join(d, 'onnx'), { recursive: true });
    writeFileSync(join(tmp.dir, 'elsewhere.onnx_data'), 'w');
    symlinkSync(join(tmp.dir, 'elsewhere.onnx_data'), join(d, 'onnx/model.onnx_data'));
    writeFileSync(join(d, 'config.json'), '{}');
    symlinkSync(d, join(d, 'onnx/loop')); // a link back up
    expect(walk(d)).toEqual(['config.json', 'onnx/model.onnx_data']);
  });
});

describe('productionClosure', () => {
  /** A package folder with a package.json. */
  function pkg(dir: string, name: string, version: string, deps: Record<string, string> = {}, extra: object = {}) {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, version, dependencies: deps, ...extra }));
  }

  it('lays out a hoisted install so that every package resolves to the version it had, without dev dependencies', () => {
    // project/node_modules/{uit, a, b@1, dev-only}, and a's own b@2 nested under it
    const nm = join(tmp.dir, 'project/node_modules');
    pkg(join(nm, 'uit'), 'uit', '0.1.0', { a: '^1', b: '^1' }, { devDependencies: { 'dev-only': '*' }, optionalDependencies: { absent: '*' } });
    pkg(join(nm, 'a'), 'a', '1.0.0', { b: '^2' });
    pkg(join(nm, 'a/node_modules/b'), 'b', '2.0.0');
    pkg(join(nm, 'b'), 'b', '1.0.0');
    pkg(join(nm, 'dev-only'), 'dev-only', '1.0.0');
    const deps = productionClosure(join(nm, 'uit'));
    expect(deps.map((d) => `${d.dest} ${d.name}@${d.version}`)).toEqual([
      'node_modules/a a@1.0.0',
      'node_modules/a/node_modules/b b@2.0.0',
      'node_modules/b b@1.0.0',
    ]);
  });

  it('names a missing required dependency and where it looked', () => {
    const root = join(tmp.dir, 'lonely');
    pkg(root, 'lonely', '1.0.0', { gone: '^1' });
    expect(() => productionClosure(root)).toThrow(/gone, a dependency of lonely, is not installed/);
  });
});

describe('native packages', () => {
  const t = { platform: 'linux', arch: 'x64', withCuda: false };
  it("keeps this platform's onnxruntime binaries, and the CUDA provider only when asked", () => {
    expect(keepFile('onnxruntime-node', 'bin/napi-v6/linux/x64/libonnxruntime.so.1', t)).toBe(true);
    expect(keepFile('onnxruntime-node', 'bin/napi-v6/linux/arm64/libonnxruntime.so.1', t)).toBe(false);
    expect(keepFile('onnxruntime-node', 'bin/napi-v6/darwin/arm64/libonnxruntime.1.30.0.dylib', t)).toBe(false);
    expect(keepFile('onnxruntime-node', 'bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so', t)).toBe(false);
    expect(keepFile('onnxruntime-node', 'bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so', { ...t, withCuda: true })).toBe(true);
    expect(keepFile('onnxruntime-node', 'script/install.js', t)).toBe(true); // what installs CUDA later
    expect(keepFile('webgpu', 'dist/linux-x64/dawn.node', t)).toBe(true);
    expect(keepFile('webgpu', 'dist/win32-x64/dawn.node', t)).toBe(false);
  });
});

describe('parseSums', () => {
  it('reads sha256sum lines and refuses a path that leaves the bundle, naming the line', () => {
    const h = 'a'.repeat(64);
    expect([...parseSums(`${h}  dist/cli.js\n${h} *bin/uit\n`, 'S').entries()]).toEqual([
      ['dist/cli.js', h],
      ['bin/uit', h],
    ]);
    expect(() => parseSums(`${h}  ok\n${h}  ../../etc/passwd\n`, 'S')).toThrow(/^S:2: \.\.\/\.\.\/etc\/passwd: path leaves the bundle$/);
    expect(() => parseSums('not a line\n', 'S')).toThrow(/^S:1: expected/);
  });
});
