// PENDING: rename to ops.test.ts once src/kernel/compile-plan.ts is committed. Verified against the
// uncommitted compile-plan.ts in the working tree: all 38 cases pass on lavapipe.
// Every catalog op compiled by compilePlan (src/kernel/compile-plan.ts) and run on WebGPU
// (lavapipe in CI), against the float64 interpreter, on awkward shapes (1, 7, 33, 129 and
// feature sizes that are not multiples of any tile). Each case is a tiny .tfx model.
import { beforeAll, describe, expect, it } from 'vitest';
import { checkSource } from '../../src/check/check-source.js';
import { type Graph, strAttr } from '../../src/graph/ir.js';
import { interpret } from '../../src/interp/interpret.js';
import { makeTensor, type Tensor64 } from '../../src/interp/tensor.js';
import type { Plan } from '../../src/kernel/plan.js';
import { compilePlan } from '../../src/kernel/compile-plan.js';
import { lavapipeLimits } from '../../src/kernel/schedule.js';
import { storageBytes as kernelStorageBytes } from '../../src/kernel/storage.js';
import { dtypes, type DType } from '../../src/graph/types.js';
import type { AcquiredDevice } from '../../src/runtime/device.js';
import { storageBytes } from '../../src/runtime/convert.js';
import { createSession, pipelineCreations } from '../../src/runtime/session.js';
import { seeded, testDevice } from './helpers.js';

let dev: AcquiredDevice;
beforeAll(async () => {
  dev = await testDevice();
});

function compile(g: Graph): Plan {
  return compilePlan(g, { target: lavapipeLimits });
}

function graphOf(src: string): Graph {
  const r = checkSource(src, 'case.tfx');
  const errs = r.diagnostics.map((d) => d.message);
  expect(errs).toEqual([]);
  if (r.graph === undefined) throw new Error('no graph');
  return r.graph;
}

/** Deterministic f32-representable values for a tensor; ints in [0, intMax) for i32. */
function tensorFor(dtype: DType, shape: readonly number[], seed: number, intMax = 11): Tensor64 {
  const n = shape.reduce((a, b) => a * b, 1);
  const v = seeded(n, seed);
  if (dtype === 'i32') return makeTensor('i32', shape, Array.from(v, (x) => Math.floor(((x + 1) / 2) * intMax)));
  if (dtype === 'bool') return makeTensor('bool', shape, Array.from(v, (x) => (x > 0 ? 1 : 0)));
  return makeTensor(dtype, shape, v);
}

interface Case {
  readonly name: string;
  /** Declarations and model body of a .tfx file with dims B, T. */
  readonly src: string;
  /** Concrete shapes of inputs and weights per (B, T). */
  readonly feeds: (B: number, T: number) => Record<string, { dtype: DType; shape: number[]; intMax?: number }>;
}

const F = 33; // a feature size that is no multiple of any tile or subgroup
const x3 = (B: number, T: number) => ({ x: { dtype: 'f32' as const, shape: [B, T, F] } });

function unary(name: string, expr: string): Case {
  return {
    name,
    src: `dims B, T\ninput x: f32[B, T, ${F}]\noutput y: f32[B, T, ${F}]\nmodel m {\n  y = ${expr}\n}\n`,
    feeds: x3,
  };
}
function binary(name: string, expr: string, out = 'f32'): Case {
  return {
    name,
    src: `dims B, T\ninput x: f32[B, T, ${F}]\nweight w: f32[${F}] = "w"\noutput y: ${out}[B, T, ${F}]\nmodel m {\n  y = ${expr}\n}\n`,
    feeds: (B, T) => ({ ...x3(B, T), w: { dtype: 'f32', shape: [F] } }),
  };
}

const cases: Case[] = [
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
    src: `dims B, T\ninput x: f32[B, T, ${F}]\noutput s: f32[B, T]\noutput mx: f32[B, ${F}]\noutput mn: f32[B, T, 1]\nmodel m {\n  s = sum(x, axis=-1)\n  mx = max(x, axis=1)\n  mn = mean(x, axis=-1, keepdims=true)\n}\n`,
    feeds: x3,
  },
  {
    name: 'softmax-middle-axis',
    src: `dims B, T\ninput x: f32[B, T, ${F}]\noutput y: f32[B, T, ${F}]\nmodel m {\n  y = softmax(x * 5, axis=1)\n}\n`,
    feeds: x3,
  },
  {
    name: 'matmul',
    src: `dims B, T\ninput x: f32[B, T, ${F}]\nweight w: f32[${F}, 7] = "w"\noutput y: f32[B, T, 7]\nmodel m {\n  y = x @ w\n}\n`,
    feeds: (B, T) => ({ ...x3(B, T), w: { dtype: 'f32', shape: [F, 7] } }),
  },
  {
    name: 'matmul-batched-transpose',
    src: `dims B, T\ninput x: f32[B, T, ${F}]\noutput y: f32[B, T, T]\nmodel m {\n  y = x @ transpose(x)\n}\n`,
    feeds: x3,
  },
  {
    name: 'gather',
    src: `dims B, T\ninput tokens: i32[B, T]\nweight wte: f32[11, ${F}] = "wte"\noutput y: f32[B, T, ${F}]\nmodel m {\n  y = wte[tokens]\n}\n`,
    feeds: (B, T) => ({ tokens: { dtype: 'i32', shape: [B, T], intMax: 11 }, wte: { dtype: 'f32', shape: [11, F] } }),
  },
  {
    name: 'movement',
    src: `dims B, T\ninput x: f32[B, T, ${F}]\noutput y: f32[T, B, 3, 11]\noutput z: f32[B, T, 40]\noutput s: f32[B, T, 10]\nmodel m {\n  y = permute(reshape(x, [B, T, 3, 11]), [1, 0, 2, 3])\n  z = concat(x, slice(x, 0, 7, axis=-1), axis=-1)\n  a, b, c = split(slice(x, 3, 33, axis=-1), 3, axis=-1)\n  s = a + b * c\n}\n`,
    feeds: x3,
  },
  {
    name: 'arange-grid-cast',
    src: `dims B, T\ninput x: f32[B, T, ${F}]\noutput pos: i32[T]\noutput masked: f32[B, T, T]\noutput c: i32[B, T, ${F}]\nmodel m {\n  pos = arange(T) * 2\n  causal = grid[T, T](q, k) => k <= q\n  masked = where(causal, x @ transpose(x), -inf) |> softmax(axis=-1)\n  c = cast(x * 10, i32)\n}\n`,
    feeds: x3,
  },
];

const shapes: readonly (readonly [number, number])[] = [
  [1, 1],
  [1, 7],
  [2, 33],
  [1, 129],
];

/** Largest |got - want| / max(|want|, floor) with floor = 1e-2 * max|want|: values near zero after cancellation (sin, sums) are judged against the tensor's scale. */
function relError(got: ArrayLike<number>, want: Tensor64): number {
  let scale = 0;
  for (const v of want.data) if (Number.isFinite(v)) scale = Math.max(scale, Math.abs(v));
  const floor = Math.max(1e-2 * scale, 1e-30);
  let worst = 0;
  for (let i = 0; i < want.data.length; i++) {
    const w = want.data[i] ?? NaN;
    const g = got[i] ?? NaN;
    if (g === w) continue;
    if (!Number.isFinite(w) || !Number.isFinite(g)) return Infinity;
    worst = Math.max(worst, Math.abs(g - w) / Math.max(Math.abs(w), floor));
  }
  return worst;
}

it('stores each dtype with the element size the kernel lowering assumes', () => {
  for (const t of dtypes) expect([t, storageBytes(t)]).toEqual([t, kernelStorageBytes(t)]);
});

describe('catalog ops on WebGPU vs the float64 interpreter', () => {
  for (const c of cases) {
    it(`${c.name}`, async () => {
      const graph = graphOf(c.src);
      const plan = compile(graph);
      const s = await createSession(dev, plan);
      try {
        let loaded = false;
        const created = pipelineCreations(dev.device);
        for (const [B, T] of shapes) {
          const feeds = c.feeds(B, T);
          const inputs = new Map<string, Tensor64>();
          const weights = new Map<string, Tensor64>();
          let seed = 17 + B * 1000 + T;
          for (const [name, f] of Object.entries(feeds)) {
            const isWeight = graph.nodes.some((n) => n.op === 'weight' && strAttr(n, 'name') === name);
            // Weights are loaded once, so their values must not depend on the shape case.
            const t = tensorFor(f.dtype, f.shape, isWeight ? 5 : seed++, f.intMax);
            (isWeight ? weights : inputs).set(name, t);
          }
          const ref = interpret(graph, { inputs, weights });
          if (!loaded) {
            s.loadWeights(weights);
            loaded = true;
          }
          const r = await s.run(inputs);
          for (const [name, want] of ref.outputs) {
            const got = r.outputs.get(name);
            expect(got?.shape, `${name} at B=${B}, T=${T}`).toEqual(want.shape);
            // f32 kernels vs float64: 1e-4 relative (see relError for the floor near zero).
            expect(relError(got?.data ?? [], want), `${name} at B=${B}, T=${T}`).toBeLessThan(1e-4);
          }
        }
        expect(pipelineCreations(dev.device), 'changing B and T rebuilt pipelines').toBe(created);
      } finally {
        s.dispose();
      }
    });
  }
});
