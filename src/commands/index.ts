import type { Command } from 'commander';
import * as bundle from './bundle.js';
import * as cache from './cache.js';
import * as compare from './compare.js';
import * as convert from './convert.js';
import * as demo from './demo.js';
import * as denoise from './denoise.js';
import * as distillData from './distill-data.js';
import * as doctor from './doctor.js';
import * as generate from './generate.js';
import * as score from './score.js';
import * as scoreInstructions from './score-instructions.js';
import * as serve from './serve.js';
import * as transfer from './transfer.js';

/** Each command lives in its own module and registers itself here. */
type Register = (program: Command) => void;

const commands: Register[] = [
  // Keep one line per command module, e.g. `convert.register`.
  convert.register,
  transfer.register,
  denoise.register,
  distillData.register,
  demo.register,
  compare.register,
  cache.register,
  generate.register,
  doctor.register,
  serve.register,
  score.register,
  scoreInstructions.register,
  bundle.register,
];

export function registerCommands(program: Command): void {
  for (const register of commands) register(program);
}
