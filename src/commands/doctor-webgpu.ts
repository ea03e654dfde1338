// The WebGPU part of `uit doctor`: the adapter WebGPU offers (vendor, architecture, software or
// hardware, the limits a model's tensors must fit), the Vulkan pieces under it, and, when there is
// no adapter, what is missing and how to install it. Its own module so the rest of doctor stays
// about models and providers.
import type { WebGpuReport } from '../runtime/index.js';
import { formatBytes } from '../runtime/memory.js';

export async function webgpuReport(): Promise<WebGpuReport> {
  const { probeWebGpu } = await import('../runtime/index.js');
  return probeWebGpu();
}

/** The report's lines, aligned with doctor's other sections. */
export function formatWebGpu(r: WebGpuReport): string[] {
  const pad = (label: string) => label.padEnd(14);
  const lines: string[] = [];
  const a = r.adapter;
  if (a) {
    lines.push(`${pad('webgpu')}adapter ${a.description || a.device} (${a.software ? 'software: slower than the CPU provider; --device auto does not pick it' : 'hardware'})`);
    lines.push(`${pad('')}vendor ${a.vendor || '?'}, architecture ${a.architecture || '?'}, device ${a.device || '?'}, backend ${a.backend}`);
    lines.push(`${pad('')}largest buffer ${formatBytes(a.limits.maxBufferSize, 1)}, largest storage binding ${formatBytes(a.limits.maxStorageBufferBindingSize, 1)} (each weight tensor must fit)`);
  } else lines.push(`${pad('webgpu')}no adapter${r.probed ? '' : ' report'}`);
  const v = r.vulkan;
  lines.push(`${pad('vulkan')}loader ${v.loader ?? 'libvulkan.so.1 not found'}; drivers: ${v.drivers.map((d) => `${d.library} (${d.file})`).join(', ') || 'none'}`);
  for (const p of r.problems) lines.push(`${pad('  missing')}${p}`);
  return lines;
}
