// The analytic cost model (src/kernel/analysis/cost.ts): roofline of FLOPs at a schedule's efficiency and
// bytes at the copy bandwidth, a launch cost, and on CPU adapters a per-element floor for
// one-thread-per-element and row kernels. Figures by hand from the model's stated constants.
import { describe, expect, it } from 'vitest';
import { costModelFor, modelKernelMs } from '../../../src/kernel/analysis/cost.js';
import type { KernelSchedule, Traffic } from '../../../src/kernel/ir/ir.js';
import { lavapipeLimits, webgpuDefaultLimits } from '../../../src/kernel/schedule/schedule.js';

const c = (value: number) => ({ kind: 'const', value }) as const;
const kernel = (schedule: KernelSchedule, flops: number, read: number, written: number): { schedule: KernelSchedule; traffic: Traffic } => ({ schedule, traffic: { flops: c(flops), bytesRead: c(read), bytesWritten: c(written) } });
const dims = new Map<string, number>();

describe('cost model', () => {
  const cpu = costModelFor(lavapipeLimits, { fmaGflops: 20, copyGBs: 10 });
  it('a compute-bound lane matmul: FLOPs at 0.75 of the FMA peak, plus the launch', () => {
    const lanes: KernelSchedule = { kind: 'tiled_matmul', tileRows: 16, tileCols: 32, tileK: 4, threadRows: 16, threadCols: 4, laneBroadcast: true };
    // 1.5 GFLOP at 15 GFLOP/s = 100 ms; 1 MB at 10 GB/s = 0.1 ms.
    expect(modelKernelMs(kernel(lanes, 1.5e9, 1e6, 0), dims, cpu)).toBeCloseTo(cpu.launchMs + 100, 9);
    // The direct kernel is modelled at 0.35 of the peak: slower for the same work.
    expect(modelKernelMs(kernel({ ...lanes, laneBroadcast: false, isDirect: true }, 1.5e9, 1e6, 0), dims, cpu)).toBeGreaterThan(200);
  });
  it('a memory-bound kernel: bytes at the copy bandwidth', () => {
    const gemv: KernelSchedule = { kind: 'tiled_matmul', tileRows: 1, tileCols: 8, tileK: 4, threadRows: 1, threadCols: 8, kLanes: true };
    // 2 MFLOP, 40 MB: 4 ms at 10 GB/s (the FLOPs take 0.33 ms at 0.3 x 20).
    expect(modelKernelMs(kernel(gemv, 2e6, 4e7, 0), dims, cpu)).toBeCloseTo(cpu.launchMs + 4, 9);
  });
  it('element-wise and row kernels: at least 6 ns per output element on a CPU adapter, not on a GPU', () => {
    const map: KernelSchedule = { kind: 'map', workgroupSize: 256 };
    // 1M f32 outputs: 4 MB written, 8 MB read = 1.2 ms at 10 GB/s; the floor is 6 ms.
    expect(modelKernelMs(kernel(map, 1e6, 8e6, 4e6), dims, cpu)).toBeCloseTo(cpu.launchMs + 6, 9);
    const gpu = costModelFor(webgpuDefaultLimits);
    expect(modelKernelMs(kernel(map, 1e6, 8e6, 4e6), dims, gpu)).toBeCloseTo(gpu.launchMs + 12e6 / (500 * 1e6), 9);
  });
});
