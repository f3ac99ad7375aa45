// Every catalog op, compiled for CUDA (compilePlan with cudaLimits: 256-thread blocks, warps of
// 32, 64x64 matmul tiles) and run on the CPU emulator (codegen/cuda/emu/cuda_emu.h, g++), against
// the float64 interpreter on awkward shapes (1, 7, 33 and a feature size of 33, no multiple of
// any tile or warp). Each case is a tiny .tfx model; every step of the plan runs in order.
import { describe, expect, it } from 'vitest';
import { compilePlan } from '../../src/kernel/compile-plan.js';
import { cudaLimits } from '../../src/kernel/schedule.js';
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
