// A bundle's manifest files, and how `uit doctor` shows their check. Light (no zod): doctor.ts loads
// it with the CLI, and manifest.ts, the check itself, only when doctor runs.
import type { InstallationCheck } from './manifest.js';

/** What was bundled, for which platform and Node ABI (manifest.ts, bundleInfoSchema). */
export const INFO_FILE = 'bundle.json';
/** Every file's sha256, as coreutils' `sha256sum` writes them. */
export const SUMS_FILE = 'SHA256SUMS';

/** One line for `uit doctor`, and the lines under it that name what is wrong. */
export function describeCheck(c: InstallationCheck): string[] {
  const name = c.info ? `${c.info.name} ${c.info.version} ${c.info.kind} for ${c.info.platform}/${c.info.arch}` : c.root;
  const sample = (paths: string[]) => paths.slice(0, 5).join(', ') + (paths.length > 5 ? `, ... (${paths.length - 5} more)` : '');
  const lines: string[] = [];
  if (c.ok) {
    lines.push(`${name}: all ${c.files} files match ${SUMS_FILE}`);
  } else {
    const bad = c.missing.length + c.changed.length;
    lines.push(`FAIL ${name}${c.files ? `: ${bad} of ${c.files} files differ from ${SUMS_FILE}` : ''}`);
    if (c.changed.length) lines.push(`changed: ${sample(c.changed)}`);
    if (c.missing.length) lines.push(`missing: ${sample(c.missing)}`);
    for (const p of c.problems) lines.push(p);
  }
  if (c.extra.length) lines.push(`not in ${SUMS_FILE} (added after bundling; not checked): ${sample(c.extra)}`);
  return lines;
}
