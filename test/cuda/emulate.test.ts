// Every catalog op, compiled for CUDA (compilePlan with cudaLimits: 256-thread blocks, warps of
// 32, 64x64 matmul tiles) and run on the CPU emulator (codegen/cuda/emu/cuda_emu.h, g++), against
// the float64 interpreter on awkward shapes (1, 7, 33 and a feature size of 33, no multiple of
// any tile or warp). Each case is a tiny .tfx model; every step of the plan runs in order.
import { describe, expect, it } from 'vitest';
import { compilePlan } from '../../src/compile/plan.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext } from '../../src/passes/pass.js';
import { pipelines } from '../../src/passes/pipeline.js';
import { cudaLimits } from '../../src/kernel/schedule/schedule.js';
import { runPlanEmulated } from '../../src/runtime-cuda/emulate.js';
import { F, header, type OpCase, opCases } from '../helpers/op-cases.js';
import { bindDims, feedsFor, graphOf, interpret, relError } from './helpers.js';

const cases: readonly OpCase[] = [
  ...opCases,
  {
    name: 'f16-cast-and-math',
    src: `${header}output y: f16[B, T, ${F}]\noutput z: f32[B, T, ${F}]\nmodel m {\n  h = cast(x, f16)\n  y = exp(h) * h + h\n  z = cast(softmax(h * 4, axis=-1), f32)\n}\n`,
  },
];

const shapes: readonly (readonly [number, number])[] = [
  [1, 1],
  [2, 7],
  [1, 33],
];

describe('catalog ops on the CUDA CPU emulator vs the float64 interpreter', () => {
  for (const c of cases) {
    it(c.name, () => {
      const graph = graphOf(c.src);
      const plan = compilePlan(graph, { target: cudaLimits });
      for (const [B, T] of shapes) {
        const preset = new Map([
          ['B', B],
          ['T', T],
        ]);
        const { inputs, weights } = feedsFor(graph, preset, 17 + B * 100 + T);
        const ref = interpret(graph, { inputs, weights });
        const dims = bindDims(graph, { inputs, weights });
        const feeds = new Map([...inputs, ...weights].map(([k, t]) => [k, t.data]));
        const r = runPlanEmulated(plan, dims, feeds);
        expect(r.stepsRun).toBeGreaterThan(0);
        for (const [name, want] of ref.outputs) {
          const got = r.outputs.get(name);
          // f32 kernels vs float64: 1e-4 relative. Values computed through f16 (the interpreter
          // rounds each f16 op too, but exp/sum orders differ): 2^-11 per rounding, a few deep: 4e-3.
          const isHalf = c.name.startsWith('f16');
          expect(relError(got ?? [], want), `${name} at B=${B}, T=${T}`).toBeLessThan(isHalf ? 4e-3 : 1e-4);
        }
      }
    });
  }
});

// Attention with an LSE output (fuse-attention makes it fused_attention_lse): the prefill kernel
// writes the LSE at T = 7, the split-K pair at T = 1 (the combine writes it). Row 2 sees no key.
describe('attention LSE on the CUDA CPU emulator vs the float64 interpreter', () => {
  const src = `dims B, T
input q: f32[B, 2, T, 16]
input k: f32[B, 2, T, 16]
input v: f32[B, 2, T, 16]
output o: f32[B, 2, T, 16]
output lse: f32[B, 2, T]
model m {
  visible = grid[T, T](i, j) => j <= i && i != 2
  s = where(visible, q @ transpose(k) * 0.25, -inf)
  o = softmax(s, axis=-1) @ v
  lse = logsumexp(s, axis=-1)
}
`;
  it('fused: one attention kernel (split + combine at T = 1); LSE within 1e-5 of |lse|, -inf for the masked row', () => {
    const source = graphOf(src);
    const g = runPipeline(source, pipelines.cuda, createPassContext({ verify: true, target: 'cuda' }));
    expect(g.nodes.map((n) => n.op).filter((op) => op.startsWith('fused_attention') || op === 'logsumexp')).toEqual(['fused_attention', 'fused_attention_lse']);
    const plan = compilePlan(g, { target: cudaLimits });
    expect(plan.steps.map((s) => s.kernel.replace(/^.*_fused/, 'fused'))).toEqual(['fused_attention', 'fused_attention_split', 'fused_attention_combine']);
    for (const [B, T] of [[1, 7], [2, 1]] as const) {
      const { inputs, weights } = feedsFor(source, new Map([['B', B], ['T', T]]), 5 + T);
      const ref = interpret(source, { inputs, weights });
      const r = runPlanEmulated(plan, bindDims(g, { inputs, weights }), new Map([...inputs].map(([k, t]) => [k, t.data])));
      const want = ref.outputs.get('lse');
      const got = r.outputs.get('lse') ?? [];
      if (want === undefined) throw new Error('no reference LSE');
      expect(got.length).toBe(want.data.length);
      for (let i = 0; i < want.data.length; i++) {
        const w = want.data[i] ?? NaN;
        const row = i % T;
        // Row 2 is fully masked: exactly -inf. Else f32 vs float64 within 1e-5 * max(|lse|, 1).
        if (row === 2) expect(w).toBe(-Infinity);
        if (w === -Infinity) expect(got[i], `B=${B} T=${T} row ${i}`).toBe(-Infinity);
        else expect(Math.abs((got[i] ?? NaN) - w) / Math.max(Math.abs(w), 1), `B=${B} T=${T} row ${i}`).toBeLessThanOrEqual(1e-5);
      }
      const o = ref.outputs.get('o');
      if (o === undefined) throw new Error('no reference output');
      expect(relError(r.outputs.get('o') ?? [], o), `o at B=${B}, T=${T}`).toBeLessThan(1e-4);
    }
  }, 300_000);
});
