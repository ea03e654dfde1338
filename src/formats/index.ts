// The format layer: readers, writers, detection, template texts. The library's `formats`
// namespace adds convert() and the transfer methods on top (src/transfer/formats-api.ts).
export * from './api.js';
export { FORMATS, WRITERS, FORMAT_NAMES, TARGET_NAMES, detectFile, formatByName, writerByName, planInput, readInput, type InputPart } from './registry.js';
export { niv2, niv2Writer, niv2DocToTask } from './niv2.js';
export { promptsource, loadTemplatesYaml, PsRenderer, readRows, type PsTemplate, type PsFile, type RenderOptions } from './promptsource.js';
export { p3 } from './p3.js';
export { flan, flanWriter, renderFlan, formatOptions } from './flan.js';
export { crossfit } from './crossfit.js';
export { alpaca, alpacaWriter } from './alpaca.js';
export { selfinstruct } from './selfinstruct.js';
export { sharegpt } from './sharegpt.js';
export { compileTemplate, TemplateError } from './jinja-py.js';
export { promptsourceText, flanText, alignPrompts, type TemplateText } from './template-text.js';
