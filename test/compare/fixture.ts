// The compare fixture pair (test/fixtures/compare, built by its build.py): where it is and the
// ids of the tasks present on both sides, in report order.
export const FIX = 'test/fixtures/compare';
export const BOTH = [
  'task003_mctaco_question_generation_event_duration',
  'task040_qasc_question_generation',
  'task082_babi_t1_single_supporting_fact_question_generation',
  'task610_conllpp_ner',
  'task748_glucose_reverse_cause_event_detection',
];
