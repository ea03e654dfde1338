// The vitest config `npm run mutate` gives Stryker: the base config, with only the test files of
// the module being mutated (scripts/mutate/modules.mjs). Stryker's own `testFiles` option is not
// used: with it, Stryker 9.6 activates static mutants (module-level constants, schemas) after the
// module has loaded, and reports them as survivors (stryker-js#6144).
import { defineConfig } from 'vitest/config';
import base from './vitest.config';
import { MODULES } from './scripts/mutate/modules.mjs';

const mod = MODULES[process.env.UIT_MUTATE_MODULE as keyof typeof MODULES];
if (!mod) throw new Error('UIT_MUTATE_MODULE is not set: run `npm run mutate`');

export default defineConfig({ ...base, test: { ...base.test, include: mod.tests } });
