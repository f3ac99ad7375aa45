// `tfc bench peak` (src/cli/bench-peak.ts): the FMA and copy ceilings on this adapter, measured
// by the same kind of dispatch the benches time. Times are not asserted (a shared CPU adapter
// swings 2x); what is checked: the kernels compute what they claim, and the figures are finite.
import { beforeAll, describe, expect, it } from 'vitest';
import { copyGrid, copyKernel, fmaFlops, fmaKernel, measurePeak } from '../../src/cli/bench-peak.js';
import type { AcquiredDevice } from '../../src/runtime/device.js';
import { testDevice } from './helpers.js';

let dev: AcquiredDevice;
beforeAll(async () => {
  dev = await testDevice();
}, 240_000);

async function readBack(device: GPUDevice, b: GPUBuffer, bytes: number): Promise<Float32Array> {
  const r = device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const enc = device.createCommandEncoder();
  enc.copyBufferToBuffer(b, 0, r, 0, bytes);
  device.queue.submit([enc.finish()]);
  await r.mapAsync(GPUMapMode.READ);
  const out = new Float32Array(r.getMappedRange().slice(0));
  r.unmap();
  return out;
}

describe('tfc bench peak', () => {
  it('the FMA kernel computes its chains (checked on the host) and counts 8 FLOPs per vec4 FMA', async () => {
    const device = dev.device;
    const iters = 5;
    const out = device.createBuffer({ size: 8 * 16, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
    const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module: device.createShaderModule({ code: fmaKernel(8, 2, iters) }), entryPoint: 'main' } });
    const bind = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: out } }] });
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bind);
    pass.dispatchWorkgroups(1);
    pass.end();
    device.queue.submit([enc.finish()]);
    const got = await readBack(device, out, 8 * 16);
    const m = [0.999, 0.998, 0.997, 0.996];
    for (let t = 0; t < 8; t++) {
      for (let c = 0; c < 4; c++) {
        let want = 0;
        for (let a = 0; a < 2; a++) {
          let x = Math.fround(t * 1e-9 + a);
          for (let i = 0; i < iters; i++) x = x * (m[c] ?? 0) + 1e-3;
          want += x;
        }
        expect(got[t * 4 + c]).toBeCloseTo(want, 4);
      }
    }
    expect(fmaFlops(3, 8, 2, 5)).toBe(3 * 8 * 5 * 2 * 4 * 2);
  });

  it('the copy kernel copies every vec4, a partial last workgroup included', async () => {
    const device = dev.device;
    const n = 2048 * 3 + 8; // vec4s: three whole workgroups and a partial one
    const src = device.createBuffer({ size: n * 16, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
    const dst = device.createBuffer({ size: n * 16, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
    const data = Float32Array.from({ length: n * 4 }, (_, i) => i + 0.5);
    device.queue.writeBuffer(src, 0, data);
    const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module: device.createShaderModule({ code: copyKernel }), entryPoint: 'main' } });
    const bind = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: src } }, { binding: 1, resource: { buffer: dst } }] });
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bind);
    const [gx, gy] = copyGrid(n);
    expect(gx * gy * 2048).toBeGreaterThanOrEqual(n);
    pass.dispatchWorkgroups(gx, gy);
    pass.end();
    device.queue.submit([enc.finish()]);
    expect(Array.from(await readBack(device, dst, n * 16))).toEqual(Array.from(data));
  });

  it('measures finite, positive ceilings with one figure per round', async () => {
    const p = await measurePeak(dev.device, 3);
    expect(p.fmaRuns).toHaveLength(3);
    expect(p.copyRuns).toHaveLength(3);
    expect(p.fmaGflops).toBeGreaterThan(0);
    expect(p.copyGBs).toBeGreaterThan(0);
    expect(Number.isFinite(p.fmaGflops + p.copyGBs)).toBe(true);
  }, 120_000);
});
