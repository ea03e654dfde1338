// Where the cache lives when the user does not say: one file per user, shared by every command.
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';

/** The default in words, for --help (the path itself depends on the environment of the run). */
export const DEFAULT_CACHE_HELP = '$UIT_CACHE, else $XDG_CACHE_HOME/uit/cache.sqlite, else ~/.cache/uit/cache.sqlite';

/**
 * `$UIT_CACHE` if set, else `$XDG_CACHE_HOME/uit/cache.sqlite` (XDG requires an absolute path;
 * a relative one is ignored), else `~/.cache/uit/cache.sqlite`.
 */
export function defaultCachePath(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env.UIT_CACHE;
  if (explicit !== undefined && explicit !== '') return resolve(explicit);
  const xdg = env.XDG_CACHE_HOME;
  if (xdg !== undefined && isAbsolute(xdg)) return join(xdg, 'uit', 'cache.sqlite');
  return join(homedir(), '.cache', 'uit', 'cache.sqlite');
}
