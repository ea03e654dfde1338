// From a source task and its selected definitions to the Ni-v2 task that is written, and the
// provenance line that goes with it. (A Ni-v2 source's Definition[0] is its source instruction; its
// further definitions, if any, are not carried over: the Definition list is the selection's.) The shaping matches the heuristic method's, so heuristic and
// model outputs differ only in their Definition (and provenance):
//   - a task without Positive Examples takes its first instances as Positive Examples (`examples`,
//     default 2, always leaving one instance), and the scoring prompt uses exactly these examples;
//   - a picked candidate that carries its own Positive Examples gives the task those examples
//     (instead of the source's, or the borrowed ones), as it was scored with them;
//   - Definition[0] is the best kept candidate; with --top-k k the kept candidates follow in rank
//     order, and with --keep-candidates every other candidate follows too (scored ones by rank,
//     then unscored ones), so a Ni-v2 reader sees all of them as the task's definitions.
import type { LazyTask } from '../formats/api.js';
import { lazyFromTask } from '../formats/api.js';
import { DEFINITION, INSTANCES, NEGATIVE, NIV2_KEY_ORDER, POSITIVE, datasetNameOf } from '../formats/niv2.js';
import type { ScoringMode, TaskScores } from '../perplexity/index.js';
import type { Example, Instance, Provenance, Task } from '../types.js';
import { borrowExamples } from './borrow-examples.js';
import type { TransferInfo } from './candidates-file.js';

/** The task as written apart from its Definition: Positive Examples borrowed from instances if it has none. */
export const prepareNiv2 = borrowExamples;

/** The definitions to write, best first (see the file comment). */
export function definitionsToWrite(scores: TaskScores, keepCandidates: boolean): string[] {
  const byRank = scores.candidates.filter((c) => c.rank !== null).sort((a, b) => a.rank! - b.rank!);
  const kept = byRank.filter((c) => c.kept).map((c) => c.definition);
  if (!keepCandidates) return kept;
  const rest = [...byRank.filter((c) => !c.kept), ...scores.candidates.filter((c) => c.rank === null)].map((c) => c.definition);
  return [...kept, ...rest];
}

/** The task with `examples` as its Positive Examples (a picked candidate's own). */
export function withPositiveExamples(t: LazyTask, examples: Example[]): LazyTask {
  return replaceTask(t, { ...t.task, positiveExamples: examples });
}

function stripInstanceExtra(i: Instance): Instance {
  if (i.extra === undefined) return i;
  const { extra: _dropped, ...rest } = i;
  return rest;
}

/**
 * The task with `definitions` as its Definition list. One definition is simply the task's
 * definition. More than one needs the Ni-v2 writer's list: a Ni-v2 source keeps its layout with
 * the extra entries after the first; any other source is given the layout the writer uses for
 * non-Ni-v2 tasks (the released key order, Source = the dataset name), spelled out as a Ni-v2
 * layout so that the writer emits every definition. Instance extras are dropped there, as the
 * writer drops them for non-Ni-v2 sources.
 */
export function withDefinitions(t: LazyTask, definitions: string[]): LazyTask {
  const [first, ...rest] = definitions;
  const task = t.task;
  if (task.source.format === 'niv2') {
    // the source's own definitions after the first are replaced too (only Definition[0] was transferred)
    return replaceTask(t, { ...task, definition: first, source: { ...task.source, extra: { ...task.source.extra, [DEFINITION]: rest } } });
  }
  if (rest.length === 0) return replaceTask(t, { ...task, definition: first });
  const values: Record<string, unknown> = {
    Source: [datasetNameOf(task)],
    [DEFINITION]: rest,
    [POSITIVE]: null,
    [NEGATIVE]: null,
    [INSTANCES]: null,
  };
  const extra = Object.fromEntries(NIV2_KEY_ORDER.map((k) => [k, k in values ? values[k] : []]));
  const shaped: Task = {
    ...task,
    definition: first,
    source: { ...task.source, format: 'niv2', extra },
    instances: task.instances.map(stripInstanceExtra),
  };
  if (t.complete) return lazyFromTask(shaped);
  return {
    task: shaped,
    complete: false,
    instances: async function* () {
      for await (const i of t.instances()) yield stripInstanceExtra(i);
    },
  };
}

function replaceTask(t: LazyTask, task: Task): LazyTask {
  return t.complete ? lazyFromTask(task) : { ...t, task };
}

/** Reads a streamed task's instances once, so a bad record fails the task before anything is written. */
export async function checkInstances(t: LazyTask): Promise<void> {
  if (t.complete) return;
  for await (const _ of t.instances()) {
    // reading is the check
  }
}

export interface ScorerInfo {
  model: string;
  name: string;
}

export interface SelectionInfo {
  /** How candidates were scored (`uit` or `reference`): part of every provenance line. */
  scoring: ScoringMode;
  instances: number;
  instanceSeed: number;
  threshold?: number;
  topK?: number;
  keepCandidates: boolean;
}

/** The provenance line of a denoised task (the same for `uit convert` and `uit transfer` + `uit denoise`). */
export function modelProvenance(args: {
  source: Task;
  target: string;
  transfer: TransferInfo | null;
  scorer: ScorerInfo;
  selection: SelectionInfo;
  scores: TaskScores;
  borrowed: number;
  /** Per candidate: the file it came from (the reference's layout), if any. */
  files?: (string | undefined)[];
}): Provenance {
  const { source, transfer, scores, selection } = args;
  const method: Provenance['method'] = transfer === null ? 'denoise' : transfer.backend === 'local' ? 'model' : 'api';
  const p: Provenance = {
    source: { file: source.source.file, format: source.source.format, id: source.id },
    method,
    target: args.target,
    sourceInstruction: source.definition,
    transfer,
    scorer: {
      model: args.scorer.model,
      name: args.scorer.name,
      scoring: scores.scoring,
      instances: selection.instances,
      instanceSeed: selection.instanceSeed,
      scoredInstances: scores.setup.instances.length,
      ...(scores.setup.examplesFromInstances.length ? { examplesFromInstances: scores.setup.examplesFromInstances } : {}),
    },
    selection: {
      rule: 'lowest-perplexity',
      threshold: selection.threshold ?? null,
      topK: selection.topK ?? null,
      keepCandidates: selection.keepCandidates,
    },
    candidates: scores.candidates.map((c, i) => ({
      definition: c.definition,
      ...(args.files?.[i] !== undefined ? { file: args.files[i] } : {}),
      // scored with Positive Examples of its own (they are the written task's when it is picked)
      ...(c.ownExamples ? { ownExamples: true } : {}),
      meanCe: c.meanCe,
      perplexity: c.perplexity,
      ...(c.unscored !== null ? { unscored: c.unscored } : {}),
      ...(c.chunkMeanCe !== null ? { chunkMeanCe: c.chunkMeanCe } : {}),
      tokens: c.tokens,
      instances: c.instances,
      // instances whose scoring prompt had long inputs shortened to fit the scorer (Definition whole)
      ...(c.shortenedInstances > 0 ? { shortenedInstances: c.shortenedInstances } : {}),
      // ... with inputs cut for it alone: its Definition is longer than the room kept for one
      ...(c.fittedAlone ? { fittedAlone: true } : {}),
      // instances whose prompt did not fit even so and lost tokens on the left (the Definition first)
      ...(c.truncatedInstances > 0 ? { truncatedInstances: c.truncatedInstances } : {}),
      rank: c.rank,
      kept: c.kept,
    })),
    chosen: scores.best,
  };
  if (args.borrowed > 0) p.positiveExamplesFromInstances = args.borrowed;
  return p;
}
