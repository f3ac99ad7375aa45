// The CLI's WebGPU side: compiling a graph to a Plan for `tfc compile` (fixed, named target
// limits, so the artifacts do not depend on the machine) and running it for
// `tfc run --target webgpu` (compiled for the adapter it runs on).
import type { Graph, Node } from '../graph/ir.js';
import { dimConstValue } from '../base/dim.js';
import type { Tensor64 } from '../base/tensor.js';
import { lowerModel } from '../compile/kernels.js';
import type { Compilation } from '../compile/model.js';
import type { Plan } from '../kernel/plan/plan.js';
import { type Schedule, type TargetLimits, lavapipeLimits, webgpuDefaultLimits } from '../kernel/schedule/schedule.js';
import { acquireDevice, hasWebGpu, type AcquiredDevice } from '../runtime/device.js';
import { createSession, type MemoryReport } from '../runtime/session.js';
import { targetLimitsOf } from '../runtime/target.js';

/** Limits `tfc compile --limits` accepts: `default` runs on any adapter, `lavapipe` is CI's. */
export const compileLimits: Readonly<Record<string, TargetLimits>> = {
  default: webgpuDefaultLimits,
  lavapipe: lavapipeLimits,
};

export { hasWebGpu };

/**
 * Allowed token ranges for inputs used as gather indices (`wte[tokens]`): an id past the table
 * reads another tensor's memory on a GPU, so the runtime checks them before any dispatch.
 */
export function gatherIndexRanges(g: Graph): Record<string, { min: number; maxExclusive: number }> {
  const out: Record<string, { min: number; maxExclusive: number }> = {};
  const node = (id: number | undefined): Node | undefined => (id === undefined ? undefined : g.nodes[id]);
  for (const n of g.nodes) {
    if (n.op !== 'gather') continue;
    const table = node(n.operands[0]);
    const ids = node(n.operands[1]);
    if (table === undefined || ids === undefined || ids.op !== 'input') continue;
    const rows = table.type.shape[0];
    const count = rows === undefined ? undefined : dimConstValue(rows);
    if (count === undefined) continue;
    const name = ids.attrs['name'];
    if (name?.kind !== 'str') continue;
    const prev = out[name.value];
    out[name.value] = { min: 0, maxExclusive: prev === undefined ? count : Math.min(prev.maxExclusive, count) };
  }
  return out;
}

export interface WebGpuRun {
  readonly outputs: Map<string, Tensor64>;
  readonly dims: ReadonlyMap<string, number>;
  readonly memory: MemoryReport;
  readonly plan: Plan;
  readonly adapter: string;
}

let device: Promise<AcquiredDevice> | undefined;

/** Lowers `c` for this machine's adapter and runs it once. Throws NoWebGpuError or RuntimeError. */
export async function runOnWebGpu(
  c: Compilation,
  weights: ReadonlyMap<string, Tensor64>,
  inputs: ReadonlyMap<string, Tensor64>,
  dims: ReadonlyMap<string, number>,
  /** `tfc tune`'s cached schedule for this adapter, if any (src/cli/tune.ts). */
  scheduleFor?: (target: TargetLimits) => Promise<Schedule | undefined>,
): Promise<WebGpuRun> {
  device ??= acquireDevice();
  const dev = await device;
  const target = targetLimitsOf(dev);
  const schedule = await scheduleFor?.(target);
  const plan = lowerModel(c, { limits: target, ...(schedule !== undefined ? { schedule } : {}) }).plan;
  const session = await createSession(dev, plan, { inputRanges: gatherIndexRanges(c.graph) });
  try {
    session.loadWeights(weights);
    const r = await session.run(inputs, { dims });
    const outputs = new Map<string, Tensor64>();
    for (const [name, o] of r.outputs) outputs.set(name, { dtype: o.dtype, shape: o.shape, data: Float64Array.from(o.data) });
    const info = dev.adapterInfo;
    return { outputs, dims: r.dims, memory: r.memory, plan, adapter: info.description || info.device || info.vendor || 'adapter' };
  } finally {
    session.dispose();
  }
}
