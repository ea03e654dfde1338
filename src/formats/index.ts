// The formats layer as a library (`import { formats } from 'uit'`): readers, writers, detection,
// and convert() with its pluggable transfer methods. docs/formats.md describes the API.
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
export { convert, type ConvertOptions, type ConvertSummary } from '../transfer/convert.js';
export { registerTransferMethod, transferMethod, transferMethodNames, type TransferMethod, type TransferContext, type TransferResult } from '../transfer/method.js';
export { heuristicTransfer, heuristicDefinition } from '../transfer/heuristic.js';
export { promptsourceText, flanText, alignPrompts, type TemplateText } from '../transfer/template-text.js';
