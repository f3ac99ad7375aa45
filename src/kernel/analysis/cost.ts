// The analytic cost model (issue 13): a kernel's time from its traffic formulas (FLOPs, bytes),
// its schedule and the adapter's ceilings. time = launch + max(FLOPs / (efficiency x FMA peak),
// bytes / copy bandwidth). Efficiencies are the fractions of the FMA peak each schedule family
// reached when measured on the adapter (CPU: docs/performance.md "Performance notes"); a GPU's table
// is a placeholder until a GPU session measures it. Used where a fusion must pay (fuse-norm),
// and by `--report` to put each fused kernel's modelled time next to the kernels it replaced.
import type { Kernel, KernelSchedule } from '../ir/ir.js';
import { evalSize } from '../plan/plan.js';
import type { TargetLimits } from '../schedule/schedule.js';

export interface CostModel {
  /** Where the figures come from (shown in reports). */
  readonly name: string;
  readonly fmaGflops: number;
  readonly copyGBs: number;
  /** Fixed cost of one dispatch (ms). */
  readonly launchMs: number;
  /** Fraction of the FMA peak a kernel of this schedule reaches. */
  efficiency(s: KernelSchedule): number;
  /**
   * Milliseconds per output element of one-thread-per-element and row kernels, whatever their
   * bytes: on a CPU adapter their per-invocation overhead, not memory, sets their speed.
   */
  readonly elementMs: number;
}

/**
 * lavapipe, measured in one process with the FMA peak (quiet machine, 2 cores, Zen 5):
 * lane-broadcast matmul 0.75 of the peak, the direct 8x8 kernel 0.35, the staged GPU tiling 0.12;
 * the broadcast attention prefill ~0.5, the older direct attention 0.2; element-wise and row
 * kernels do a few FLOPs per element and are bandwidth bound (0.1 of the peak for their FLOPs).
 */
const cpuEfficiency = (s: KernelSchedule): number => {
  switch (s.kind) {
    case 'tiled_matmul':
      if (s.kLanes === true) return 0.3;
      if (s.laneBroadcast === true) return 0.75;
      return s.isDirect === true ? 0.35 : 0.12;
    case 'flash_attention':
      return s.laneBroadcast === true ? 0.5 : 0.2;
    case 'mma_matmul':
      return 0.05;
    case 'map':
    case 'row':
    case 'cross_entropy':
      return 0.1;
  }
};

/** A GPU (WebGPU defaults, CUDA): nominal figures, relative decisions only; not measured yet. */
const gpuEfficiency = (s: KernelSchedule): number => {
  switch (s.kind) {
    case 'tiled_matmul':
      return 0.4;
    case 'mma_matmul':
      return 0.6;
    case 'flash_attention':
      return s.mma !== undefined ? 0.5 : 0.3;
    case 'map':
    case 'row':
    case 'cross_entropy':
      return 0.05;
  }
};

/**
 * The model for a target: a CPU adapter's measured efficiencies with `peak` (this process's
 * measurement, bench-peak.ts) or lavapipe's typical ceilings; nominal GPU figures otherwise.
 */
export function costModelFor(target: TargetLimits, peak?: { readonly fmaGflops: number; readonly copyGBs: number }): CostModel {
  if (target.isCpu === true) {
    // 6 ns per element: GPT-2 small's unfused softmax, where, div and add kernels took 5-7 ns per
    // element on lavapipe (196k elements a layer at T = 128 in ~1.2-1.5 ms), ~10x their bytes' time.
    return { name: peak === undefined ? `${target.name} (typical: 30 GFLOP/s, 12 GB/s)` : `${target.name} (measured peak)`, fmaGflops: peak?.fmaGflops ?? 30, copyGBs: peak?.copyGBs ?? 12, launchMs: 0.03, efficiency: cpuEfficiency, elementMs: 6e-6 };
  }
  return { name: `${target.name} (nominal GPU: 10 TFLOP/s, 500 GB/s)`, fmaGflops: peak?.fmaGflops ?? 10000, copyGBs: peak?.copyGBs ?? 500, launchMs: 0.005, efficiency: gpuEfficiency, elementMs: 0 };
}

/** Modelled milliseconds of one launch of `k` at `dims`. */
export function modelKernelMs(k: Pick<Kernel, 'traffic' | 'schedule'>, dims: ReadonlyMap<string, number>, m: CostModel): number {
  const flops = evalSize(k.traffic.flops, dims);
  const bytes = evalSize(k.traffic.bytesRead, dims) + evalSize(k.traffic.bytesWritten, dims);
  const written = evalSize(k.traffic.bytesWritten, dims);
  // Output elements of a map/row kernel (4-byte elements assumed: the floor is a rough one).
  const perElement = k.schedule.kind === 'map' || k.schedule.kind === 'row' || k.schedule.kind === 'cross_entropy' ? (written / 4) * m.elementMs : 0;
  return m.launchMs + Math.max(flops / (m.efficiency(k.schedule) * m.fmaGflops * 1e6), bytes / (m.copyGBs * 1e6), perElement);
}
