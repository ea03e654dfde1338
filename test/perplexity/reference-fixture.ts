// Candidate files in the UIT reference's layout (its data/ppl_annotation/tasks), built from real
// data in ../shared/data: one Ni-v2 file per candidate, `<k>of<N>sample_<task>.json`, each with
// its own Definition list (real Ni-v2 definitions, some with ', some with ", some with both, and a
// few made to exercise every repr rule) and its own two Positive Examples, over the same
// Instances. Three tasks, their files interleaved in one folder as the reference's are:
//   common_gen: 32 candidates, 40 instances (more than M = 32), 4 empty gold outputs, one candidate
//               whose prompts overflow the fixture's 2048 positions as they are (the reference
//               gives it no score) and fit with their inputs shortened (the uit mode scores it);
//   commonsense_qa: 4 candidates, 27 instances (the reference's last slice holds 3);
//   social_i_qa: 3 candidates, 20 instances (the reference scores none: its last slice is empty).
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const P3 = resolve('../shared/data/p3_rendered');
const DEFINITIONS = resolve('../shared/data/niv2/definitions.jsonl');

interface Row {
  input: string;
  output: string;
}

function rows(prefix: string): Row[] {
  const out: Row[] = [];
  for (const f of readdirSync(P3).filter((n) => n.startsWith(prefix) && n.endsWith('.jsonl')).sort()) {
    for (const line of readFileSync(join(P3, f), 'utf8').split('\n')) {
      if (!line.trim()) continue;
      const r = JSON.parse(line) as { prompt: string; completion: string };
      out.push({ input: r.prompt.trim(), output: r.completion.replace(/<\|endoftext\|>$/, '').trim() });
    }
  }
  return out;
}

/** Real Ni-v2 definitions of a few kinds, short enough for the fixture's context. */
function definitions(): { single: string[]; double: string[]; both: string[]; plain: string[] } {
  const all = readFileSync(DEFINITIONS, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as { definition: string }).definition)
    .filter((d) => d.length < 400);
  return {
    single: all.filter((d) => d.includes("'") && !d.includes('"')),
    double: all.filter((d) => d.includes('"') && !d.includes("'")),
    both: all.filter((d) => d.includes("'") && d.includes('"')),
    plain: all.filter((d) => !d.includes("'") && !d.includes('"')),
  };
}

/** Definitions made to exercise Python's repr: backslashes, control and format characters, non-ASCII, a trailing space. */
const EDGE_DEFINITIONS = [
  'Write a sentence with the given concepts.\nUse each concept once; a backslash (\\) stays one, a tab\tstays one.',
  "Don't skip a concept: it's \"required\".",
  'Concepts \u00e9t\u00e9, na\u00efve, \u65e5\u672c\u8a9e \u2713 \u{1F600}; odd ones: \u200b \u00a0 \u00ad \u2028 \x7f \x1b end.',
  'You are given concepts. Write one sentence that uses them, then stop ',
];

export interface ReferenceTask {
  /** The reference's task name (".json" included) and uit's id for it. */
  name: string;
  id: string;
  files: string[];
  instances: number;
}

function writeTask(dir: string, name: string, defs: string[], examples: Row[], instances: Row[], emptyAt: number[] = []): ReferenceTask {
  const instanceList = instances.map((r, i) => ({ input: r.input, output: [emptyAt.includes(i) ? '' : r.output], id: `${name.replace(/\.json$/, '')}-${i}` }));
  const files = defs.map((d, k) => {
    const file = join(dir, `${k}of${defs.length}sample_${name}`);
    const doc = {
      Definition: [d],
      'Positive Examples': [0, 1].map((j) => {
        const ex = examples[(2 * k + j) % examples.length];
        return { input: ex.input, output: ex.output, explanation: 'Made for the test.' };
      }),
      'Negative Examples': [],
      Instances: instanceList,
      Contributors: ['uit test'],
      Source: [],
      Categories: ['p3_data'],
    };
    writeFileSync(file, JSON.stringify(doc, null, 4));
    return file;
  });
  return { name, id: name.replace(/\.json$/, ''), files, instances: instances.length };
}

/** Writes the three tasks' candidate files into `dir`. */
export function writeReferenceLayout(dir: string): { commonGen: ReferenceTask; csqa: ReferenceTask; siqa: ReferenceTask } {
  const d = definitions();
  // about 2,170 bytes of prompt as it is, about 1,970 with the inputs cut to the marker
  const long = `${d.plain[3]} ${'Think about every concept before you write. '.repeat(34)}`;
  const commonGenDefs = [
    ...d.single.slice(0, 8),
    ...d.double.slice(0, 6),
    ...d.both.slice(0, 6),
    ...d.plain.slice(0, 7),
    ...EDGE_DEFINITIONS,
    long,
  ];
  const cg = rows('common_gen_');
  const commonGen = writeTask(dir, 'p3_train_common_gen_16_samples_unified_T.json', commonGenDefs, cg.slice(40, 104), cg.slice(0, 40), [3, 17, 26, 38]);
  const cq = rows('commonsense_qa_');
  const csqa = writeTask(dir, 'p3_train_commonsense_qa_16_samples_unified_T.json', [d.single[9], d.both[7], d.plain[9], EDGE_DEFINITIONS[1]], cq.slice(27, 40), cq.slice(0, 27));
  const si = rows('social_i_qa_');
  const siqa = writeTask(dir, 'p3_train_social_i_qa_16_samples_unified_T.json', [d.single[10], d.double[8], d.plain[10]], si.slice(20, 30), si.slice(0, 20));
  if (commonGen.files.length !== 32) throw new Error(`expected 32 common_gen candidates, made ${commonGen.files.length}`);
  return { commonGen, csqa, siqa };
}
