// `uit bundle`: pack this installation for a machine with no network (docs/airgap.md).
import { Command, Option } from 'commander';
import { relative } from 'node:path';
import type { BundleOptions, BundleResult } from '../bundle/build.js';

const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;

export function bundleText(r: BundleResult): string {
  const i = r.info;
  const file = relative(process.cwd(), r.file) || r.file;
  const lines = [
    `wrote ${file}: ${mib(r.bytes)} (${r.files} files, ${mib(r.unpackedBytes)} unpacked)`,
    `  for      ${i.platform}/${i.arch}, Node ABI ${i.node.abi}`,
    `  node     ${
      i.node.bundled
        ? `${i.node.version} included (node/bin/node)`
        : `not included: the target needs Node ${i.node.version.split('.')[0]}${i.kind === 'bundle' ? ' (--with-node adds it)' : ', the one that runs npm'}`
    }`,
    `  cuda     ${i.cuda ? 'CUDA provider included' : 'not included (CPU and WebGPU only; --with-cuda)'}`,
    `  models   ${i.models.join(', ') || 'none'}`,
    `  sha256   ${r.sha256} (also in ${file}.sha256)`,
    '',
    i.kind === 'npm'
      ? `On the target: npm install -g ./${file.split('/').pop()} && uit doctor`
      : `On the target: tar -xzf ${file.split('/').pop()} && export PATH="$PWD/${file.split('/').pop()!.replace(/\.tar\.gz$/, '')}/bin:$PATH" && uit doctor`,
  ];
  return `${lines.join('\n')}\n`;
}

export function register(program: Command): void {
  program
    .command('bundle')
    .summary('pack uit, its dependencies and models for a machine with no network')
    .description(
      'Write uit-VERSION-PLATFORM-ARCH.tar.gz: the built code, the production dependencies with only this ' +
        "platform's native binaries, models/uit-tiny, a bin/uit launcher, and a manifest (bundle.json, SHA256SUMS) " +
        'that `uit doctor` checks on the target. Unpack it anywhere and put its bin/ on PATH. With --npm, write ' +
        'an npm package (.tgz) with every dependency inside, for `npm install -g FILE` with no registry.',
    )
    .option('-o, --out <path>', 'an existing folder (the file gets its standard name) or a file path', '.')
    .addOption(new Option('--with-node [node]', 'include a Node runtime, so the target needs nothing: the one running uit, or this node binary'))
    .option('--with-cuda', "include onnxruntime-node's CUDA provider (it must be installed here: see `uit doctor`)")
    .option('--model <dir>', 'add a model folder as models/<its name> (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--npm', 'write an npm package for `npm install -g` instead (every dependency bundled; no --with-node)')
    .option('--json', 'print {file, sha256, bytes, unpackedBytes, files, info} as JSON')
    .addHelpText(
      'after',
      `
The native modules (better-sqlite3, onnxruntime-node) are this machine's: the bundle runs on the
same platform and architecture, with the same Node major version unless --with-node includes Node.
SOURCE_DATE_EPOCH, when set, fixes the archive's timestamps so that the same inputs give the same bytes.

Examples:
  $ uit bundle
  $ uit bundle --with-node --model ./gpt-j-uit -o /media/usb
  $ uit bundle --with-node --with-cuda --model ./gpt-j-uit
  $ uit bundle --npm && npm install -g ./uit-0.1.0-linux-x64.tgz`,
    )
    .action(async (opts: { out: string; withNode?: boolean | string; withCuda?: boolean; model: string[]; npm?: boolean; json?: boolean }) => {
      const { buildBundle } = await import('../bundle/build.js');
      const options: BundleOptions = {
        kind: opts.npm ? 'npm' : 'bundle',
        out: opts.out,
        withNode: opts.withNode,
        withCuda: opts.withCuda,
        models: opts.model,
        quiet: opts.json,
      };
      const r = await buildBundle(options);
      process.stdout.write(opts.json ? `${JSON.stringify(r, null, 2)}\n` : bundleText(r));
    });
}
