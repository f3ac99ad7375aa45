// Every catalog op, compiled for CUDA (compilePlan with cudaLimits: 256-thread blocks, warps of
// 32, 64x64 matmul tiles) and run on the CPU emulator (codegen/cuda/emu/cuda_emu.h, g++), against
// the float64 interpreter on awkward shapes (1, 7, 33 and a feature size of 33, no multiple of
// any tile or warp). Each case is a tiny .tfx model; every step of the plan runs in order.
import { describe, expect, it } from 'vitest';
import { compilePlan } from '../../src/kernel/compile-plan.js';
import { cudaLimits } from '../../src/kernel/schedule.js';
import { runPlanEmulated } from '../../src/runtime-cuda/emulate.js';
import { bindDims, feedsFor, graphOf, interpret, relError } from './helpers.js';

const F = 33;
const header = `dims B, T\ninput x: f32[B, T, ${F}]\n`;
const unary = (name: string, expr: string) => ({ name, src: `${header}output y: f32[B, T, ${F}]\nmodel m {\n  y = ${expr}\n}\n` });
const binary = (name: string, expr: string, out = 'f32') => ({
  name,
  src: `${header}weight w: f32[${F}] = "w"\noutput y: ${out}[B, T, ${F}]\nmodel m {\n  y = ${expr}\n}\n`,
});

export const opCases: readonly { readonly name: string; readonly src: string }[] = [
  unary('neg', '-x'),
  unary('exp', 'exp(x)'),
  unary('log', 'log(abs(x) + 0.5)'),
  unary('sqrt', 'sqrt(abs(x))'),
  unary('rsqrt', 'rsqrt(abs(x) + 0.1)'),
  unary('tanh', 'tanh(3 * x)'),
  unary('erf', 'erf(2 * x)'),
  unary('sin', 'sin(4 * x)'),
  unary('cos', 'cos(4 * x)'),
  unary('abs', 'abs(x)'),
  unary('relu', 'relu(x)'),
  unary('silu', 'silu(4 * x)'),
  unary('sigmoid', 'sigmoid(4 * x)'),
  unary('gelu-erf', 'gelu(3 * x)'),
  unary('gelu-tanh', 'gelu(3 * x, approx="tanh")'),
  unary('softmax-last', 'softmax(8 * x, axis=-1)'),
  binary('add', 'x + w'),
  binary('sub', 'x - w'),
  binary('mul', 'x * w'),
  binary('div', 'x / (abs(w) + 0.5)'),
  binary('pow', 'pow(abs(x) + 0.1, w * 2)'),
  binary('max', 'max(x, w)'),
  binary('min', 'min(x, w)'),
  binary('mod', 'x % (abs(w) + 0.3)'),
  binary('where-lt', 'where(x < w, x, w)'),
  binary('where-le-ge', 'where((x <= w) && (x >= -w), 1.0, 0.0) + where(!(x > w) || (x == w), 2.0, 0.0)'),
  binary('ne', 'where(x != w, x, 0.0)'),
  binary('lt-bool-output', 'x < w', 'bool'),
  binary('layernorm', 'layernorm(x, w, w * 0.5)'),
  binary('rmsnorm', 'rmsnorm(x, w)'),
  {
    name: 'reductions',
    src: `${header}output s: f32[B, T]\noutput mx: f32[B, ${F}]\noutput mn: f32[B, T, 1]\nmodel m {\n  s = sum(x, axis=-1)\n  mx = max(x, axis=1)\n  mn = mean(x, axis=-1, keepdims=true)\n}\n`,
  },
  { name: 'softmax-middle-axis', src: `${header}output y: f32[B, T, ${F}]\nmodel m {\n  y = softmax(x * 5, axis=1)\n}\n` },
  { name: 'matmul', src: `${header}weight w: f32[${F}, 7] = "w"\noutput y: f32[B, T, 7]\nmodel m {\n  y = x @ w\n}\n` },
  { name: 'matmul-batched-transpose', src: `${header}output y: f32[B, T, T]\nmodel m {\n  y = x @ transpose(x)\n}\n` },
  {
    name: 'gather',
    src: `dims B, T\ninput tokens: i32[B, T]\nweight wte: f32[11, ${F}] = "wte"\noutput y: f32[B, T, ${F}]\nmodel m {\n  y = wte[tokens]\n}\n`,
  },
  {
    name: 'movement',
    src: `${header}output y: f32[T, B, 3, 11]\noutput z: f32[B, T, 40]\noutput s: f32[B, T, 10]\nmodel m {\n  y = permute(reshape(x, [B, T, 3, 11]), [1, 0, 2, 3])\n  z = concat(x, slice(x, 0, 7, axis=-1), axis=-1)\n  a, b, c = split(slice(x, 3, 33, axis=-1), 3, axis=-1)\n  s = a + b * c\n}\n`,
  },
  {
    name: 'arange-grid-cast',
    src: `${header}output pos: i32[T]\noutput masked: f32[B, T, T]\noutput c: i32[B, T, ${F}]\nmodel m {\n  pos = arange(T) * 2\n  causal = grid[T, T](q, k) => k <= q\n  masked = where(causal, x @ transpose(x), -inf) |> softmax(axis=-1)\n  c = cast(x * 10, i32)\n}\n`,
  },
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
  for (const c of opCases) {
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
