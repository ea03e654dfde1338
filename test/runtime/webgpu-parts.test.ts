// The parts of the WebGPU route that need no adapter: output names read from .onnx files, the
// helper graphs' encoding (run here on the CPU provider), and the diagnosis of what a machine lacks.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeOnnxModel, readOnnxOutputNames } from '../../src/runtime/onnx-proto.js';
import { ensureRuntimeDir, findVulkanDrivers, isSoftwareAdapter, webgpuProblems } from '../../src/runtime/webgpu.js';
import { FIXTURE, tempDir } from './helpers.js';

const tmp = tempDir('uit-webgpu-parts-');
afterAll(() => tmp.cleanup());

describe('readOnnxOutputNames', () => {
  for (const graph of ['model.onnx', 'model.fast.onnx']) {
    it(`lists ${graph}'s outputs as onnxruntime does, without loading weights`, async () => {
      const path = join(FIXTURE, 'onnx', graph);
      const session = await ort.InferenceSession.create(path);
      expect(readOnnxOutputNames(path)).toEqual(session.outputNames);
      await session.release();
    });
  }

  it('names the file when it is not an ONNX graph', () => {
    const bad = join(tmp.dir, 'bad.onnx');
    writeFileSync(bad, Buffer.from([0x0f, 0xff, 0xff]));
    expect(() => readOnnxOutputNames(bad)).toThrow(new RegExp(`${bad}: .*not an ONNX file`));
    expect(() => readOnnxOutputNames(join(tmp.dir, 'missing.onnx'))).toThrow(/cannot read .*missing\.onnx/);
  });
});

describe('encodeOnnxModel', () => {
  it("writes graphs onnxruntime runs: the KV join (Slice + Concat) and row gather, with the engine's values", async () => {
    const model = encodeOnnxModel({
      name: 't',
      inputs: [
        { name: 'base', type: 'float32', dims: ['r', 2, 's', 1] },
        { name: 'new', type: 'float32', dims: ['r', 2, 'n', 1] },
        { name: 'take', type: 'int64', dims: [1] },
        { name: 'rows', type: 'int64', dims: ['k'] },
      ],
      outputs: [{ name: 'out', type: 'float32', dims: ['k', 2, 'j', 1] }],
      nodes: [
        { op: 'Slice', inputs: ['new', 'zero', 'take', 'axis2'], outputs: ['kept'] },
        { op: 'Concat', inputs: ['base', 'kept'], outputs: ['joined'], attrs: { axis: 2 } },
        { op: 'Gather', inputs: ['joined', 'rows'], outputs: ['out'], attrs: { axis: 0 } },
      ],
      constants: [
        { name: 'zero', int64: [0] },
        { name: 'axis2', int64: [2] },
      ],
    });
    const s = await ort.InferenceSession.create(model);
    // base [2 rows, 2 heads, 1 slot]: r*10 + h; new [2, 2, 3 slots]: 100 + r*10 + h + t/10
    const base = new ort.Tensor('float32', Float32Array.from([0, 1, 10, 11]), [2, 2, 1, 1]);
    const added = new ort.Tensor('float32', Float32Array.from([100, 100.1, 100.2, 101, 101.1, 101.2, 110, 110.1, 110.2, 111, 111.1, 111.2]), [2, 2, 3, 1]);
    const out = await s.run({ base, new: added, take: new ort.Tensor('int64', BigInt64Array.of(2n), [1]), rows: new ort.Tensor('int64', BigInt64Array.of(1n, 1n, 0n), [3]) });
    expect(out.out.dims).toEqual([3, 2, 3, 1]);
    const row1 = [10, 110, 110.1, 11, 111, 111.1];
    expect(Array.from(out.out.data as Float32Array).map((x) => Math.round(x * 10) / 10)).toEqual([...row1, ...row1, 0, 100, 100.1, 1, 101, 101.1]);
    await s.release();
  });
});

describe('what a machine lacks for WebGPU', () => {
  const present = { loader: '/lib/libvulkan.so.1', drivers: [{ file: '/usr/share/vulkan/icd.d/lvp_icd.json', library: 'libvulkan_lvp.so' }], nvidiaKernelDriver: false };

  it('nothing when the loader and a driver are there', () => {
    expect(webgpuProblems(present, 'linux')).toEqual([]);
  });

  it('the loader, with its package', () => {
    expect(webgpuProblems({ ...present, loader: null }, 'linux')).toEqual([expect.stringMatching(/libvulkan\.so\.1 is not found.*apt-get install libvulkan1/)]);
  });

  it('a driver: NVIDIA or Mesa from bookworm-backports', () => {
    const p = webgpuProblems({ ...present, drivers: [] }, 'linux');
    expect(p).toEqual([expect.stringMatching(/no Vulkan driver.*nvidia_icd\.json.*mesa-vulkan-drivers.*bookworm-backports/)]);
  });

  it("the NVIDIA driver's Vulkan part when the kernel driver is loaded without it", () => {
    const p = webgpuProblems({ ...present, nvidiaKernelDriver: true }, 'linux');
    expect(p).toEqual([expect.stringMatching(/NVIDIA driver is loaded but .* no NVIDIA Vulkan driver.*VK_DRIVER_FILES/)]);
    expect(webgpuProblems({ ...present, nvidiaKernelDriver: true, drivers: [{ file: '/etc/vulkan/icd.d/nvidia_icd.json', library: 'libGLX_nvidia.so.0' }] }, 'linux')).toEqual([]);
  });

  it('reads the ICD manifests VK_DRIVER_FILES names, or the folders the loader searches', () => {
    const dir = join(tmp.dir, 'icd.d');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'nvidia_icd.json'), JSON.stringify({ ICD: { library_path: 'libGLX_nvidia.so.0', api_version: '1.3' } }));
    writeFileSync(join(dir, 'broken.json'), '{');
    expect(findVulkanDrivers({ VK_DRIVER_FILES: join(dir, 'nvidia_icd.json') })).toEqual([{ file: join(dir, 'nvidia_icd.json'), library: 'libGLX_nvidia.so.0' }]);
    const data = join(tmp.dir, 'share');
    mkdirSync(join(data, 'vulkan'), { recursive: true });
    writeFileSync(join(data, 'vulkan', 'x'), '');
    mkdirSync(join(data, 'vulkan', 'icd.d'));
    writeFileSync(join(data, 'vulkan', 'icd.d', 'lvp_icd.json'), JSON.stringify({ ICD: { library_path: 'libvulkan_lvp.so' } }));
    expect(findVulkanDrivers({ HOME: tmp.dir, XDG_DATA_DIRS: data })).toEqual([{ file: join(data, 'vulkan', 'icd.d', 'lvp_icd.json'), library: 'libvulkan_lvp.so' }]);
  });

  it('tells software adapters (lavapipe, SwiftShader) from hardware ones', () => {
    expect(isSoftwareAdapter({ architecture: 'software', description: 'llvmpipe: Mesa 25.0.7' })).toBe(true);
    expect(isSoftwareAdapter({ device: 'SwiftShader Device (Subzero)', description: '' })).toBe(true);
    expect(isSoftwareAdapter({ vendor: 'nvidia', architecture: 'hopper', device: 'NVIDIA H100 80GB HBM3', description: 'NVIDIA: 580.159' } as never)).toBe(false);
  });

  it('gives Dawn a writable XDG_RUNTIME_DIR when the one set is not', () => {
    const env: NodeJS.ProcessEnv = { XDG_RUNTIME_DIR: join(tmp.dir, 'does-not-exist') };
    ensureRuntimeDir(env);
    expect(env.XDG_RUNTIME_DIR).toMatch(/uit-runtime-/);
    const keep: NodeJS.ProcessEnv = { XDG_RUNTIME_DIR: tmp.dir };
    ensureRuntimeDir(keep);
    expect(keep.XDG_RUNTIME_DIR).toBe(tmp.dir);
  });
});
