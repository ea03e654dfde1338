// Preloaded into Stryker's processes by scripts/mutate/run.mjs (NODE_OPTIONS=--import). Stryker 9 (its
// tsconfig rewriting and @stryker-mutator/typescript-checker) drives the classic compiler API,
// which TypeScript 7, the project's `typescript`, no longer ships; Stryker 10's TypeScript 7 support
// needs Node 22. So `import ts from 'typescript'` inside @stryker-mutator/* gets TypeScript 6
// (devDependency `typescript-classic`); every other import of typescript is left alone.
import { register } from 'node:module';

const hooks = `
export async function resolve(specifier, context, next) {
  if (specifier === 'typescript' && context.parentURL && context.parentURL.includes('/node_modules/@stryker-mutator/')) {
    return next('typescript-classic', context);
  }
  return next(specifier, context);
}`;
register(`data:text/javascript,${encodeURIComponent(hooks)}`, import.meta.url);
