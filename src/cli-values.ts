// Parsers for numeric option values, shared by every command's declarations. Light on purpose
// (commander only): they run while `uit --help` declares options. A bad value is commander's
// InvalidArgumentError, which it reports as a usage error (exit code 2) naming the option.
import { InvalidArgumentError, Option } from 'commander';
import { DEVICES } from './runtime/devices.js';

/** `--device cpu|cuda|webgpu|auto`, default cpu, the same for every command that runs a model. */
export function deviceOption(description = 'execution provider: cpu, cuda, webgpu (GPU through Vulkan, nothing to download), or auto'): Option {
  return new Option('--device <device>', description).choices([...DEVICES]).default('cpu');
}

/**
 * An integer option, within [min, max] where given, and always a safe integer (a larger one would
 * not survive as a number). Empty text is refused (Number('') would be 0).
 */
export function int(name: string, min?: number, max?: number) {
  const rule =
    min !== undefined && max !== undefined ? ` from ${min} to ${max}` : min !== undefined ? ` >= ${min}` : max !== undefined ? ` <= ${max}` : '';
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isSafeInteger(n) || (min !== undefined && n < min) || (max !== undefined && n > max)) {
      throw new InvalidArgumentError(`${name} must be an integer${rule}`);
    }
    return n;
  };
}

/** A finite number option that passes `ok`; `rule` says what `ok` wants ("> 0", "in (0, 1]"). */
export function float(name: string, ok: (n: number) => boolean, rule: string) {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === '' || !Number.isFinite(n) || !ok(n)) throw new InvalidArgumentError(`${name} must be ${rule}`);
    return n;
  };
}

/** A number option > 0. */
export function positive(name: string) {
  return float(name, (n) => n > 0, 'a number > 0');
}
