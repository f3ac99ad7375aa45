/// <reference types="@webgpu/types" preserve="true" />
// Session.warmUp: one tiny dispatch per pipeline not yet warm on this device, so that drivers
// that compile at first dispatch (lavapipe) do it before the first run, with true progress.
import type { PlanKernel } from '../kernel/plan/plan.js';
import { RuntimeError } from './errors.js';
import { usage } from './gpu-flags.js';
import type { BuiltKernel, DeviceCache } from './pipelines.js';

export async function warmUpPipelines(
  device: GPUDevice,
  kernels: ReadonlyMap<string, PlanKernel>,
  built: ReadonlyMap<string, BuiltKernel>,
  cache: DeviceCache,
  unlessLost: <T>(p: Promise<T>) => Promise<T>,
  onProgress?: (done: number, total: number) => void,
): Promise<void> {
  // One entry per distinct pipeline (kernels of equal source share one in the device cache).
  const distinct = new Map<GPUComputePipeline, { k: PlanKernel; bk: BuiltKernel }>();
  for (const k of kernels.values()) {
    const bk = built.get(k.name);
    if (bk !== undefined && !distinct.has(bk.pipeline)) distinct.set(bk.pipeline, { k, bk });
  }
  const total = distinct.size;
  const cold = [...distinct.values()].filter((e) => !cache.warm.has(e.bk.pipeline));
  let done = total - cold.length;
  onProgress?.(done, total);
  if (cold.length === 0) return;
  // Scratch buffers, one per binding slot so that no buffer is bound twice in one dispatch; every
  // kernel declares runtime-sized arrays of at most vec4 (16 B per element), and robustness
  // clamps the reads and writes of a one-workgroup dispatch to them.
  const scratchBytes = 256;
  const slots = Math.max(...cold.map((e) => e.k.slots.length));
  const scratch = Array.from({ length: slots }, (_, i) =>
    device.createBuffer({ label: `warm-up scratch ${i}`, size: scratchBytes, usage: usage.STORAGE }),
  );
  // dims = 1 everywhere: loops bounded by dims run once, and no grid or `when` is evaluated.
  const dims = device.createBuffer({ label: 'warm-up dims', size: scratchBytes, usage: usage.UNIFORM | usage.COPY_DST });
  device.queue.writeBuffer(dims, 0, new Uint32Array(scratchBytes / 4).fill(1));
  try {
    for (const { k, bk } of cold) {
      device.pushErrorScope('validation');
      const entries: GPUBindGroupEntry[] = k.slots.map((sl, i) => ({ binding: sl.binding, resource: { buffer: scratch[i] ?? dims } })); // scratch[i] exists: i < slots
      if (k.uniforms.length > 0) entries.push({ binding: k.uniformBinding, resource: { buffer: dims } });
      const encoder = device.createCommandEncoder({ label: `${k.name} warm-up` });
      const pass = encoder.beginComputePass({ label: `${k.name} warm-up` });
      pass.setPipeline(bk.pipeline);
      pass.setBindGroup(0, device.createBindGroup({ label: `${k.name} warm-up`, layout: bk.layout, entries }));
      pass.dispatchWorkgroups(1, 1, 1);
      pass.end();
      device.queue.submit([encoder.finish()]);
      const err = await unlessLost(device.popErrorScope());
      if (err !== null) throw new RuntimeError('device', `WebGPU rejected the warm-up dispatch of kernel ${k.name}: ${err.message}`);
      // Waiting per pipeline makes the progress true: the driver compiles while this runs.
      await unlessLost(device.queue.onSubmittedWorkDone());
      cache.warm.add(bk.pipeline);
      onProgress?.(++done, total);
    }
  } finally {
    for (const b of scratch) b.destroy();
    dims.destroy();
  }
}
