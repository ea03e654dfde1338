// The library's `formats` namespace (`import { formats } from 'uit'`): the format layer, plus
// convert() with its pluggable transfer methods, which live a floor up. docs/formats.md
// describes the API.
export * from '../formats/index.js';
export { convert, type ConvertOptions, type ConvertSummary } from './convert.js';
export { registerTransferMethod, transferMethod, transferMethodNames, type TransferMethod, type TransferContext, type TransferResult } from './method.js';
export { heuristicTransfer, heuristicDefinition } from './heuristic.js';
