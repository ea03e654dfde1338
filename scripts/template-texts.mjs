// The source instructions of PromptSource and FLAN templates exactly as the pipeline makes them
// (src/formats/template-text.ts, from the build in dist/), so the embedded model trains on the
// same text it is given in `uit convert --method model`.
//
//   node scripts/template-texts.mjs < in.json > out.json
//
// in: [{"kind": "promptsource", "jinja": ...} | {"kind": "flan", "input": ..., "output": ...}]
// out: [{"prompt": ...} | {"error": ...}] in the same order.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const lib = fileURLToPath(new URL('../dist/formats/template-text.js', import.meta.url));
if (!existsSync(lib)) {
  console.error(`${lib} is missing: build first (npx tsc -p tsconfig.build.json)`);
  process.exit(2);
}
const { promptsourceText, flanText } = await import(lib);

let raw = '';
for await (const chunk of process.stdin) raw += chunk;
const out = JSON.parse(raw).map((t) => {
  try {
    return { prompt: t.kind === 'flan' ? flanText(t.input, t.output).prompt : promptsourceText(t.jinja).prompt };
  } catch (err) {
    return { error: String(err?.message ?? err) };
  }
});
process.stdout.write(JSON.stringify(out));
