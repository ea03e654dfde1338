#!/usr/bin/env node
// Thin launcher: the CLI is compiled to dist/ by `npm run build` (run by `npm ci` via `prepare`).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// A bundle (`uit bundle`) carries native modules built for one Node ABI: say so plainly before
// better-sqlite3 fails to load with a stack trace (exit 4, as doctor's bundle check).
let bundle = null;
try {
  bundle = JSON.parse(readFileSync(new URL('../bundle.json', import.meta.url), 'utf8'));
} catch {
  // not a bundle (a checkout or a plain npm install), or a damaged bundle.json that `uit doctor` reports
}
if (bundle?.node?.abi && bundle.node.abi !== process.versions.modules) {
  console.error(
    `uit: this ${bundle.kind ?? 'bundle'} was built for Node ${bundle.node.version} (ABI ${bundle.node.abi}), and this is ` +
      `Node ${process.version} (ABI ${process.versions.modules}): its native modules will not load. Run it with ` +
      `Node ${String(bundle.node.version).split('.')[0]}, or use a bundle made with \`uit bundle --with-node\`.`,
  );
  process.exit(4);
}

import('../dist/cli.js').then((m) => m.main(process.argv), (err) => {
  if (bundle) {
    // `uit doctor` cannot run without the CLI's own files: point at the check that needs no uit
    const root = fileURLToPath(new URL('..', import.meta.url));
    console.error(`uit: the CLI did not load (${String(err?.message ?? err).split('\n')[0]})`);
    console.error(`uit: this ${bundle.kind ?? 'bundle'}'s files may be damaged; check them with: cd ${root} && sha256sum -c --quiet SHA256SUMS`);
    process.exit(4);
  }
  if (err && err.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes('dist/cli.js')) {
    console.error('uit: dist/ is missing; run `npm run build` (npm ci does this).');
    process.exit(1);
  }
  throw err;
});
