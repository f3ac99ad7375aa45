// Helpers for the lavapipe kernel experiments in this folder (see README.md): a device, buffers, timed dispatches.
// scratch: time raw WGSL kernels on lavapipe. usage: import {run} ...
import { acquireDevice } from '../../dist/src/runtime/device.js';
export const acq = await acquireDevice();
export const dev = acq.device;
export function buf(bytes, data) {
  const b = dev.createBuffer({ size: Math.max(16, bytes), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC });
  if (data) dev.queue.writeBuffer(b, 0, data);
  return b;
}
export async function time(code, buffers, grid, reps = 5) {
  dev.pushErrorScope('validation');
  const mod = dev.createShaderModule({ code });
  const pipe = dev.createComputePipeline({ layout: 'auto', compute: { module: mod, entryPoint: 'main' } });
  const bg = dev.createBindGroup({ layout: pipe.getBindGroupLayout(0), entries: buffers.map((b, i) => ({ binding: i, resource: { buffer: b } })) });
  const err = await dev.popErrorScope();
  if (err) throw new Error(err.message);
  const once = async () => {
    const enc = dev.createCommandEncoder();
    const p = enc.beginComputePass();
    p.setPipeline(pipe); p.setBindGroup(0, bg); p.dispatchWorkgroups(...grid); p.end();
    const t0 = performance.now();
    dev.queue.submit([enc.finish()]);
    await dev.queue.onSubmittedWorkDone();
    return performance.now() - t0;
  };
  await once();
  const ts = [];
  for (let i = 0; i < reps; i++) ts.push(await once());
  ts.sort((a, b) => a - b);
  return ts[Math.floor(ts.length / 2)];
}
export async function read(b, bytes) {
  const r = dev.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const enc = dev.createCommandEncoder(); enc.copyBufferToBuffer(b, 0, r, 0, bytes); dev.queue.submit([enc.finish()]);
  await r.mapAsync(GPUMapMode.READ); const out = new Float32Array(r.getMappedRange().slice(0)); r.unmap(); return out;
}
