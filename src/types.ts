// The canonical data of uit. Every reader produces Tasks, every writer consumes them.

export type FormatName =
  | 'niv2'
  | 'promptsource'
  | 'p3'
  | 'flan'
  | 'crossfit'
  | 'alpaca'
  | 'selfinstruct'
  | 'sharegpt';

export interface Example {
  input: string;
  output: string;
  explanation?: string;
  /** Format-specific data kept for lossless writing (docs/formats.md, "extra"). */
  extra?: Record<string, unknown>;
}

export interface Instance {
  id: string;
  input: string;
  outputs: string[];
  /** Format-specific data kept for lossless writing, e.g. a template format's dataset row. */
  extra?: Record<string, unknown>;
}

export interface TaskSource {
  format: FormatName;
  /** The file the task was read from (as given by the user). */
  file: string;
  /** Fields the canonical shape does not model, kept so writers can be lossless. */
  extra: Record<string, unknown>;
}

export interface Task {
  /** e.g. "task1562_zest_question_rewriting" or "p3/ag_news/classify_question_first" */
  id: string;
  source: TaskSource;
  /** The task-level instruction (Ni-v2 Definition[0]). */
  definition: string;
  positiveExamples: Example[];
  negativeExamples: Example[];
  instances: Instance[];
}

/** How a task's definition came to be; written next to every transferred task. */
export interface Provenance {
  source: { file: string; format: FormatName; id: string };
  method: 'identity' | 'heuristic' | 'model' | 'api' | 'denoise';
  /** Free-form, method-specific facts: model identities, candidates, scores. */
  [key: string]: unknown;
}
