// Finite-difference checks of `grad` on small graphs in the float64 interpreter: each float
// weight's gradient against central differences with one Richardson step,
//   D(h) = (f(x + h) - f(x - h)) / 2h,  R = (4 D(h/2) - D(h)) / 3   (error O(h^4)),
// for f = sum(cotangent * output) with a random cotangent (the vjp's definition).
import { expect } from 'vitest';
import type { Graph } from '../../../src/graph/ir.js';
import { interpret } from '../../../src/interp/interpret.js';
import { type Tensor64, makeTensor } from '../../../src/base/tensor.js';
import { gradGraph } from '../../../src/autodiff/grad.js';
import { mulberry32 } from '../../../src/base/random.js';

/** A seeded uniform generator in [0, 1) (mulberry32). */
export const rng = mulberry32;

export interface Feeds {
  readonly weights: Map<string, Tensor64>;
  readonly inputs: Map<string, Tensor64>;
}

/** sum(seed * y) for the graph's output `output` under the feeds. */
function objective(g: Graph, output: string, feeds: Feeds, seed: Tensor64 | undefined): number {
  const y = interpret(g, feeds).outputs.get(output);
  if (y === undefined) throw new Error(`no output ${output}`);
  let s = 0;
  y.data.forEach((v, i) => (s += v * (seed === undefined ? 1 : (seed.data[i] ?? NaN))));
  return s;
}

export interface FdReport {
  /** Per differentiated weight: max |fd - grad| / max |grad| (scale-relative, as the oracle tests). */
  readonly errors: Map<string, number>;
  readonly worst: number;
}

/**
 * Differentiates `g`'s `output` w.r.t. every float weight and compares each gradient element
 * with Richardson-extrapolated central differences (step h relative to the element's size).
 */
export function checkGradients(g: Graph, output: string, feeds: Feeds, seedRng: () => number, h = 1e-3): FdReport {
  const diagnostics: string[] = [];
  const r = gradGraph(g, { output }, (d) => diagnostics.push(d.message));
  expect(diagnostics).toEqual([]);
  if (r === undefined) throw new Error('grad failed');
  const yNode = g.nodes[g.outputs.find((o) => o.name === output)?.value ?? -1];
  if (yNode === undefined) throw new Error('no output node');
  let seed: Tensor64 | undefined;
  const inputs = new Map(feeds.inputs);
  if (r.seed !== undefined) {
    const shape = interpret(g, feeds).outputs.get(output)?.shape ?? [];
    seed = makeTensor(yNode.type.dtype, shape, Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => seedRng() * 2 - 1));
    inputs.set(r.seed, seed);
  }
  const outs = interpret(r.graph, { weights: feeds.weights, inputs }).outputs;
  const errors = new Map<string, number>();
  for (const gr of r.gradients) {
    const w = feeds.weights.get(gr.of);
    const got = outs.get(gr.output);
    if (w === undefined || got === undefined) throw new Error(`no gradient for ${gr.of}`);
    expect(got.shape).toEqual(w.shape);
    let diff = 0;
    let scale = 0;
    for (let j = 0; j < w.data.length; j++) {
      const x0 = w.data[j] ?? NaN;
      const step = h * Math.max(1, Math.abs(x0));
      const at = (delta: number): number => {
        const data = w.data.slice();
        data[j] = x0 + delta;
        const weights = new Map(feeds.weights);
        weights.set(gr.of, { ...w, data });
        return objective(g, output, { weights, inputs: feeds.inputs }, seed);
      };
      const d = (s: number): number => (at(s) - at(-s)) / (2 * s);
      const fd = (4 * d(step / 2) - d(step)) / 3;
      const ad = got.data[j] ?? NaN;
      diff = Math.max(diff, Math.abs(fd - ad));
      scale = Math.max(scale, Math.abs(ad), Math.abs(fd));
    }
    errors.set(gr.of, scale === 0 ? diff : diff / scale);
  }
  return { errors, worst: Math.max(0, ...errors.values()) };
}
