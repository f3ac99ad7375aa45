// fuse-elementwise reads at most MAX_FUSED_READS tensors per fused_map (WebGPU's default 8
// storage buffers per stage, one the result): a sum of twelve distinct inputs is split into
// several fused_maps, none over the cap, and the fused graph equals the unfused one.
import { describe, expect, it } from 'vitest';
import { makeTensor, maxRelError, type Tensor64 } from '../../../src/base/tensor.js';
import type { Graph } from '../../../src/graph/ir.js';
import { interpret } from '../../../src/interp/interpret.js';
import { runPipeline } from '../../../src/passes/driver.js';
import { MAX_FUSED_READS, fuseElementwise } from '../../../src/passes/fuse-elementwise.js';
import { createPassContext } from '../../../src/passes/pass.js';
import { ir } from './helpers.js';

const n = 12;
const sumIr = `graph m(N) {
${Array.from({ length: n }, (_, i) => `  %${i} = input {name="a${i}"} : f32[N]`).join('\n')}
${Array.from({ length: n - 1 }, (_, i) => `  %${n + i} = add ${i === 0 ? '%0' : `%${n + i - 1}`}, %${i + 1} : f32[N]`).join('\n')}
  output "s" = %${2 * n - 2}
}`;

describe('fuse-elementwise read cap', () => {
  it(`splits a sum of ${n} inputs so no fused_map reads more than ${MAX_FUSED_READS}`, () => {
    const g: Graph = ir(sumIr);
    const fused = runPipeline(g, [fuseElementwise], createPassContext({ verify: true }));
    const maps = fused.nodes.filter((x) => x.op === 'fused_map');
    expect(maps.length).toBeGreaterThanOrEqual(2);
    for (const m of maps) expect(m.operands.length).toBeLessThanOrEqual(MAX_FUSED_READS);
    // Fewer kernels than the 11 adds, so the cap did not stop fusion altogether.
    expect(fused.nodes.filter((x) => x.op === 'fused_map' || x.op === 'add').length).toBeLessThan(n - 1);
    const inputs = new Map<string, Tensor64>(Array.from({ length: n }, (_, i) => [`a${i}`, makeTensor('f32', [5], [1, 2, 3, 4, 5].map((v) => v * (i + 1) + 0.25))]));
    const want = interpret(g, { inputs, weights: new Map() }).outputs.get('s');
    const got = interpret(fused, { inputs, weights: new Map() }).outputs.get('s');
    if (want === undefined || got === undefined) throw new Error('no output');
    expect(maxRelError(got, want)).toBeLessThanOrEqual(1e-15);
  });
});
