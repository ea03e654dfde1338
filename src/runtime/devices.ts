// The devices a model runs on, as `--device` names them. Kept free of imports so that declaring
// the option (while `uit --help` runs) does not load onnxruntime.
export type Device = 'cpu' | 'cuda' | 'webgpu' | 'auto';
/** Where a session runs once `auto` is resolved. */
export type ResolvedDevice = 'cpu' | 'cuda' | 'webgpu';
/** The values every `--device` option takes. */
export const DEVICES: readonly Device[] = ['cpu', 'cuda', 'webgpu', 'auto'];
