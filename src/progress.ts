// Long work shows a bar on a TTY and stays silent when piped or in --json mode.
import cliProgress from 'cli-progress';

export interface Progress {
  /** Advance by `n` units, optionally updating the named payload fields shown in the bar. */
  tick(n?: number, payload?: Record<string, string | number>): void;
  setTotal(total: number): void;
  stop(): void;
}

export interface ProgressOptions {
  label: string;
  total: number;
  /** Extra fields shown after the counter, e.g. `{ tps: 0, hits: 0 }` with format `tok/s {tps}`. */
  payload?: Record<string, string | number>;
  extraFormat?: string;
  /** Force quiet (e.g. --json). */
  quiet?: boolean;
  stream?: NodeJS.WriteStream;
}

const silent: Progress = { tick() {}, setTotal() {}, stop() {} };

export function createProgress(opts: ProgressOptions): Progress {
  const stream = opts.stream ?? process.stderr;
  if (opts.quiet || !stream.isTTY) return silent;
  const format =
    `${opts.label} [{bar}] {value}/{total} {percentage}% | {duration_formatted}` +
    (opts.extraFormat ? ` | ${opts.extraFormat}` : '');
  const bar = new cliProgress.SingleBar(
    { format, stream, hideCursor: true, clearOnComplete: false, etaBuffer: 20 },
    cliProgress.Presets.shades_classic,
  );
  bar.start(opts.total, 0, opts.payload ?? {});
  return {
    tick(n = 1, payload) {
      bar.increment(n, payload);
    },
    setTotal(total) {
      bar.setTotal(total);
    },
    stop() {
      bar.stop();
    },
  };
}
