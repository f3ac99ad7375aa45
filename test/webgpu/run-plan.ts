// Shared by the WebGPU tests that compare a whole compiled graph with the interpreter: compile for
// lavapipe limits, run once, and return the outputs as float64 tensors. (Not in helpers.ts, which
// the browser pages import and which must not pull in the compiler.)
import type { Graph } from '../../src/graph/ir.js';
import type { Tensor64 } from '../../src/base/tensor.js';
import { compilePlan } from '../../src/compile/plan.js';
import { lavapipeLimits } from '../../src/kernel/schedule/schedule.js';
import type { AcquiredDevice } from '../../src/runtime/device.js';
import { createSession } from '../../src/runtime/session.js';

/** Compiles `g` (lavapipe limits), loads the weights, runs the inputs once; the outputs as f32-typed Tensor64. */
export async function runPlan(dev: AcquiredDevice, g: Graph, weights: Map<string, Tensor64>, inputs: Map<string, Tensor64>): Promise<Map<string, Tensor64>> {
  const s = await createSession(dev, compilePlan(g, { target: lavapipeLimits }));
  try {
    s.loadWeights(weights);
    const r = await s.run(inputs);
    const out = new Map<string, Tensor64>();
    for (const [name, t] of r.outputs) out.set(name, { dtype: 'f32', shape: t.shape, data: Float64Array.from(t.data) });
    return out;
  } finally {
    s.dispose();
  }
}
