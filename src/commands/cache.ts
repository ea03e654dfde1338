// `uit cache stats|export|merge|vacuum`: look into and look after the SQLite cache. SQLite
// (better-sqlite3) loads when a subcommand runs, not when the CLI declares its options.
import { once } from 'node:events';
import { Command, Option } from 'commander';
import type { Cache, CacheStats, ExportFormat, ExportTable, MergeTable, OpenCacheOptions } from '../cache/index.js';
import { DEFAULT_CACHE_HELP, defaultCachePath } from '../cache/location.js';
import { ExitCode } from '../errors.js';
import { AtomicWriter } from '../io/atomic.js';

/** The cache's EXPORT_TABLES, declared here so that `--help` needs no SQLite (the type keeps them equal). */
const TABLES = ['generations', 'scores', 'models', 'runs'] as const satisfies readonly ExportTable[];
const ALL_TABLES: Exclude<ExportTable, (typeof TABLES)[number]> extends never ? true : never = true;
void ALL_TABLES;

async function openCache(path: string, opts?: OpenCacheOptions): Promise<Cache> {
  return (await import('../cache/index.js')).openCache(path, opts);
}

async function createProgress(...args: Parameters<typeof import('../progress.js').createProgress>) {
  return (await import('../progress.js')).createProgress(...args);
}

interface CacheOption {
  cache?: string;
}

function cacheOption(): Option {
  return new Option('--cache <file>', `the cache file (default: ${DEFAULT_CACHE_HELP})`);
}

function cachePath(opts: CacheOption): string {
  return opts.cache ?? defaultCachePath();
}

export function register(program: Command): void {
  const cache = program
    .command('cache')
    .summary('inspect and maintain the SQLite cache of generations and scores')
    .description('Inspect and maintain the SQLite cache of generations and scores: statistics, export, merge, salvage, vacuum.')
    .addHelpText(
      'after',
      `
Every generation and score goes through one SQLite file, so reruns make no model calls.
Default file: ${defaultCachePath()}

Examples:
  $ uit cache stats
  $ uit cache export --table scores --format csv -o scores.csv
  $ uit cache merge shard-*.sqlite --cache all.sqlite
  $ uit cache salvage damaged.sqlite --cache salvaged.sqlite
  $ uit cache vacuum`,
    );

  cache
    .command('stats')
    .summary('rows per table and per model, size on disk, oldest and newest rows')
    .description('Show rows per table and per model, size on disk, oldest and newest rows, and the last run.')
    .addOption(cacheOption())
    .option('--check', "also run SQLite's integrity check (reads the whole file)")
    .option('--json', 'print the statistics as JSON')
    .addHelpText(
      'after',
      `
Examples:
  $ uit cache stats
  $ uit cache stats --cache shard-3.sqlite --json | jq .rows`,
    )
    .action(async (opts: CacheOption & { json?: boolean; check?: boolean }) => {
      const c = await openCache(cachePath(opts), { readonly: true });
      try {
        const stats = c.stats();
        const problems = opts.check ? c.check() : undefined;
        if (opts.json) {
          process.stdout.write(`${JSON.stringify(problems === undefined ? stats : { ...stats, integrity: problems.length === 0 ? 'ok' : problems }, null, 2)}\n`);
        } else {
          process.stdout.write(formatStats(stats));
          if (problems !== undefined) {
            process.stdout.write(problems.length === 0 ? 'integrity   ok\n' : `integrity   ${problems.length} problem(s):\n${problems.map((p) => `  ${p}\n`).join('')}`);
          }
        }
        if (problems !== undefined && problems.length > 0) process.exitCode = ExitCode.CACHE;
      } finally {
        c.close();
      }
    });

  cache
    .command('export')
    .summary('write a table as JSON Lines or CSV, prompts reassembled')
    .description('Write a table as JSON Lines or CSV, prompts reassembled from their pieces (streamed: any size).')
    .addOption(cacheOption())
    .addOption(new Option('--table <table>', 'the table to export').choices(TABLES).default('generations'))
    .addOption(new Option('--format <format>', 'output format').choices(['jsonl', 'csv']).default('jsonl'))
    .addOption(new Option('--json', 'the same as --format jsonl (the default)').conflicts('format'))
    .option('-o, --output <file>', 'write to FILE (atomically: all or nothing) instead of stdout')
    .addHelpText(
      'after',
      `
Examples:
  $ uit cache export --table scores | head -n 3
  $ uit cache export --table generations --format csv -o generations.csv
  $ uit cache export --table runs | jq -r '[.command, .status, .started_at] | @tsv'`,
    )
    .action(async (opts: CacheOption & { table: ExportTable; format: ExportFormat; output?: string; json?: boolean }) => {
      await exportTable(cachePath(opts), opts.table, opts.json ? 'jsonl' : opts.format, opts.output);
    });

  cache
    .command('merge')
    .summary("add the rows of other caches (e.g. shards') that this cache lacks")
    .description("Add the rows of other caches (e.g. shards' caches) that this cache lacks, matched by content key: all or nothing.")
    .argument('<other...>', 'cache files to merge from (read-only)')
    .addOption(cacheOption())
    .option('--json', 'print what was added as JSON')
    .addHelpText(
      'after',
      `
Rows are matched by content key: a row already in the cache is kept, so merging is
idempotent and the order of the files does not matter for keys that agree. The merge is
all or nothing: every file is checked first, all rows go in one transaction, and a cache
that did not exist appears only when every file merged. A damaged file stops the merge
with its name; \`uit cache salvage FILE --cache NEW\` recovers what it still holds.

Examples:
  $ uit cache merge shard-0.sqlite shard-1.sqlite shard-2.sqlite --cache merged.sqlite
  $ uit cache merge /scratch/job-*/cache.sqlite`,
    )
    .action(async (others: string[], opts: CacheOption & { json?: boolean }) => {
      const { mergeCaches } = await import('../cache/index.js');
      const progress = await createProgress({ label: 'merging', total: others.length, quiet: opts.json });
      const lines: string[] = [];
      let result;
      try {
        result = mergeCaches(cachePath(opts), others, {
          onMerged: (r) => {
            progress.tick();
            lines.push(`merged ${r.from}: ${formatAdded(r.added)}`);
          },
        });
      } finally {
        progress.stop();
      }
      if (opts.json) process.stdout.write(`${JSON.stringify({ cache: result.cache, created: result.created, merged: result.merged, added: result.added }, null, 2)}\n`);
      else process.stdout.write(`${lines.join('\n')}\n${result.cache}: ${formatAdded(result.added)} added from ${others.length} file(s)\n`);
    });

  cache
    .command('salvage')
    .summary('copy every row a damaged cache still holds into a new cache')
    .description(
      'Copy every row a damaged cache still holds into a new cache: pages are read directly, rows in damaged pages are ' +
        'found by their shape, and each row is kept only when it checks out against its content key. Says what was lost.',
    )
    .argument('<damaged>', 'the damaged cache file (read only; never changed)')
    .requiredOption('--cache <new>', 'the new cache file to write (must not exist)')
    .option('--json', 'print the report as JSON')
    .addHelpText(
      'after',
      `
A rerun with the new cache recomputes only what was lost. A run that stops midway leaves no
new file.

Examples:
  $ uit cache salvage damaged.sqlite --cache salvaged.sqlite
  $ uit cache salvage shard-3.sqlite --cache shard-3.salvaged.sqlite --json | jq .lost`,
    )
    .action(async (damaged: string, opts: { cache: string; json?: boolean }) => {
      const { salvageCache } = await import('../cache/index.js');
      const r = salvageCache(damaged, opts.cache);
      if (opts.json) {
        process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
        return;
      }
      const rec = r.recovered;
      const total = rec.generations + rec.scores + rec.texts + rec.models + rec.runs;
      process.stdout.write(
        `salvaged ${r.from} into ${r.to}\n` +
          `recovered   ${total} rows: generations ${rec.generations}, scores ${rec.scores}, text pieces ${rec.texts}, models ${rec.models}, runs ${rec.runs}` +
          (r.carved ? ` (${r.carved} of them found in damaged pages)` : '') +
          '\n' +
          `pages       ${r.pages.total}: ${r.pages.sound} sound, ${r.pages.damaged} damaged\n` +
          `lost        ${r.lost.failedCheck} rows that failed their check, ${r.lost.textMissing} generations/scores whose prompt text was in a damaged page, ` +
          `and about ${r.lost.estimatedInDamagedPages} more in the damaged pages (an estimate)\n` +
          `Use --cache ${r.to} from now on: a rerun recomputes what was lost.\n`,
      );
    });

  cache
    .command('vacuum')
    .summary('rewrite the cache file compactly and truncate its write-ahead log')
    .description('Rewrite the cache file compactly (SQLite VACUUM) and truncate its write-ahead log.')
    .addOption(cacheOption())
    .option('--json', 'print the sizes as JSON')
    .addHelpText(
      'after',
      `
Needs free disk space about the size of the cache while it runs, and waits for other
processes writing the cache.

Example:
  $ uit cache vacuum --cache merged.sqlite`,
    )
    .action(async (opts: CacheOption & { json?: boolean }) => {
      const c = await openCache(cachePath(opts));
      try {
        const { before, after } = c.vacuum();
        if (opts.json) process.stdout.write(`${JSON.stringify({ cache: c.path, bytesBefore: before, bytesAfter: after })}\n`);
        else process.stdout.write(`vacuumed ${c.path}: ${formatBytes(before)} -> ${formatBytes(after)}\n`);
      } finally {
        c.close();
      }
    });
}

async function exportTable(path: string, table: ExportTable, format: ExportFormat, output?: string): Promise<void> {
  const { EXPORT_COLUMNS, csvHeader, formatExportRow } = await import('../cache/index.js');
  const c = await openCache(path, { readonly: true });
  let total: number;
  try {
    total = c.count(table);
  } catch (err) {
    c.close();
    throw err;
  }
  // Created only once reading works; from here every failure goes through abort().
  const writer = output === undefined ? undefined : new AtomicWriter(output);
  const progress = await createProgress({ label: `exporting ${table}`, total });
  let broken = false;
  let streamError: Error | undefined;
  // stdout may be a pipe that closes early (`| head`): stop quietly then, as other CLIs do.
  const onError = (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') broken = true;
    else streamError = err;
    process.stdout.emit('drain');
  };
  if (writer === undefined) process.stdout.on('error', onError);
  let buffer = '';
  const flush = async () => {
    if (buffer === '') return;
    const chunk = buffer;
    buffer = '';
    if (writer !== undefined) writer.write(chunk);
    else if (!process.stdout.write(chunk)) await Promise.race([once(process.stdout, 'drain'), once(process.stdout, 'close')]);
    if (streamError !== undefined) throw streamError;
  };
  try {
    if (format === 'csv') buffer += csvHeader(EXPORT_COLUMNS[table]);
    let n = 0;
    for (const row of c.exportRows(table)) {
      buffer += formatExportRow(row, format);
      if (++n % 256 === 0) progress.tick(256);
      if (buffer.length >= 1 << 16) await flush();
      if (broken) break;
    }
    await flush();
    progress.stop();
    writer?.commit();
  } catch (err) {
    progress.stop();
    writer?.abort();
    throw err;
  } finally {
    if (writer === undefined) process.stdout.off('error', onError);
    c.close();
  }
}

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

/** `sha256:` and 64 hex digits are unreadable in a table: the first 12 digits identify a model. */
function shortId(id: string): string {
  const m = /^(sha256:)?([0-9a-f]{64})$/.exec(id);
  return m ? `${m[1] ?? ''}${m[2].slice(0, 12)}…` : id;
}

function formatStats(s: CacheStats): string {
  const lines: string[] = [];
  const row = (label: string, value: string) => lines.push(`${label.padEnd(11)} ${value}`);
  row('cache', `${s.path} (schema v${s.schemaVersion}, journal ${s.journalMode})`);
  row('size', `${formatBytes(s.bytes.total)} (db ${formatBytes(s.bytes.db)}, wal ${formatBytes(s.bytes.wal)}, shm ${formatBytes(s.bytes.shm)})`);
  row(
    'rows',
    `generations ${s.rows.generations}, scores ${s.rows.scores}, models ${s.rows.models}, runs ${s.rows.runs}, ` +
      `text pieces ${s.rows.texts} (${s.textChars} chars)`,
  );
  const section = (label: string, range: { oldest: string | null; newest: string | null }, byModel: CacheStats['scores']['byScorer']) => {
    row(label, range.oldest === null ? 'none' : `${range.oldest} .. ${range.newest}`);
    for (const m of byModel) {
      const who = m.name === null ? `${shortId(m.id)} (not registered)` : `${m.name} (${m.kind}, ${shortId(m.id)})`;
      lines.push(`  ${String(m.rows).padStart(9)}  ${who}`);
    }
  };
  section('generations', s.generations, s.generations.byModel);
  section('scores', s.scores, s.scores.byScorer);
  const last = s.runs.last;
  row(
    'runs',
    last === null
      ? 'none'
      : `${s.rows.runs} (${s.runs.running} marked running); last: ${last.command}, ${last.status}, started ${last.startedAt}` +
          (last.finishedAt === null ? '' : `, finished ${last.finishedAt}`),
  );
  return `${lines.join('\n')}\n`;
}

function formatAdded(a: Record<MergeTable, number>): string {
  return `+${a.generations} generations, +${a.scores} scores, +${a.models} models, +${a.runs} runs, +${a.texts} text pieces`;
}

