import { describe, expect, it } from 'vitest';
import { compilePlan } from '../../../src/compile/plan.js';
import { everyOpIr, graphOf } from '../kernel/helpers.js';

const twoLayersIr = `graph two(T) {
  %0 = input {name="x"} : f32[T,32]  loc(t.tfx:1:1)
  %1 = weight {name="w0"} : f32[32,32]  loc(t.tfx:2:1)
  %2 = weight {name="w1"} : f32[32,32]  loc(t.tfx:3:1)
  %3 = matmul %0, %1 : f32[T,32]  loc(t.tfx:4:1)
  %4 = matmul %3, %2 : f32[T,32]  loc(t.tfx:5:1)
  %5 = reshape %4 {shape=dims[T,4,8]} : f32[T,4,8]  loc(t.tfx:6:1)
  output "y" = %5  loc(t.tfx:7:1)
}
`;

describe('compilePlan', () => {
  it('shares one kernel between identical layers and keeps one step per launch', () => {
    const plan = compilePlan(graphOf(twoLayersIr));
    // lavapipe: each matmul of T rows has decode-step kernels (T <= 1: the streaming partials and
    // their reduction) and a prefill one (T > 1).
    expect(plan.kernels).toHaveLength(3);
    expect(plan.steps.map((s) => s.kernel)).toEqual(['k0_matmul', 'k1_matmul', 'k2_matmul', 'k0_matmul', 'k1_matmul', 'k2_matmul']);
    expect(plan.steps.map((s) => s.when?.op)).toEqual(['<=', '<=', '>', '<=', '<=', '>']);
    expect(plan.kernels[0]?.locs).toEqual(['t.tfx:4:1', 't.tfx:5:1']);
    expect(plan.kernels[0]?.uniforms).toEqual(['T']);
  });

  it('makes a reshape a view of its source buffer and names the output buffer', () => {
    const plan = compilePlan(graphOf(twoLayersIr));
    const out = plan.outputs[0];
    const buf = plan.buffers.find((b) => b.id === out?.buffer);
    expect(buf?.kind).toBe('output');
    expect(buf?.name).toBe('y');
    expect(buf?.shape).toHaveLength(3);
    // written by the second matmul (steps 4 and 5: its decode reduction and its prefill kernel)
    expect(plan.steps[4]?.bindings.find((b) => b.access === 'read_write')?.buffer).toBe(out?.buffer);
    expect(plan.steps[5]?.bindings.find((b) => b.access === 'read_write')?.buffer).toBe(out?.buffer);
  });

  it('gives live ranges: a temp lives from its write to its last read', () => {
    const plan = compilePlan(graphOf(twoLayersIr));
    const temp = plan.buffers.filter((b) => b.kind === 'temp');
    // The first matmul's partials (steps 0-1), the intermediate (written by step 1 or 2, read up
    // to step 5) and the second matmul's partials (3-4).
    expect(temp.map((b) => [b.firstUse, b.lastUse])).toEqual([[0, 1], [1, 5], [3, 4]]);
    expect(plan.buffers.filter((b) => b.kind === 'weight').map((b) => b.name)).toEqual(['w0', 'w1']);
  });

  it('is deterministic', () => {
    expect(JSON.stringify(compilePlan(graphOf(everyOpIr)))).toBe(JSON.stringify(compilePlan(graphOf(everyOpIr))));
  });
});
