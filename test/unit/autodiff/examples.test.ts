// Every example with a `logits` output differentiates: the cross-entropy loss and its gradient
// w.r.t. every weight build without diagnostics and run in the float64 interpreter to finite
// values on the examples' seeded weights and inputs (test/helpers/examples.ts), the loss equal to
// the cross-entropy of the forward logits. Relative-bias's learned bias table, read by a grid
// through a clamped distance index (the lambda transpose's mask-and-sum path), is also checked
// against finite differences.
import { describe, expect, it } from 'vitest';
import { makeTensor, type Tensor64 } from '../../../src/base/tensor.js';
import { gradGraph } from '../../../src/autodiff/grad.js';
import { withCrossEntropyLoss } from '../../../src/autodiff/loss.js';
import type { Diagnostic } from '../../../src/diag/diagnostic.js';
import type { Graph } from '../../../src/graph/ir.js';
import { interpret } from '../../../src/interp/interpret.js';
import { exampleDims, exampleFiles, exampleReference } from '../../helpers/examples.js';
import { rng } from './fd.js';

function targetsFor(logits: Tensor64, seed: number): Tensor64 {
  const r = rng(seed);
  const v = logits.shape[logits.shape.length - 1] ?? 1;
  const lead = logits.shape.slice(0, -1);
  return makeTensor('i32', lead, Array.from({ length: lead.reduce((a, b) => a * b, 1) }, () => Math.floor(r() * v)));
}

function crossEntropy(logits: Tensor64, targets: Tensor64): number {
  const v = logits.shape[logits.shape.length - 1] ?? 1;
  let total = 0;
  for (let t = 0; t < targets.data.length; t++) {
    const row = Array.from(logits.data.subarray(t * v, (t + 1) * v));
    const m = Math.max(...row);
    total += m + Math.log(row.reduce((a, x) => a + Math.exp(x - m), 0)) - (row[targets.data[t] ?? 0] ?? NaN);
  }
  return total / targets.data.length;
}

function backwardOf(g: Graph): { graph: Graph; grads: string[] } {
  const ds: Diagnostic[] = [];
  const withLoss = withCrossEntropyLoss(g, {}, (d) => ds.push(d));
  const r = withLoss === undefined ? undefined : gradGraph(withLoss, { output: 'loss' }, (d) => ds.push(d));
  expect(ds.map((d) => d.message)).toEqual([]);
  if (r === undefined) throw new Error('no backward');
  return { graph: r.graph, grads: r.gradients.map((x) => x.output) };
}

// T = 4 new tokens instead of the examples' 9: the backward of a gather through a page table is a
// mask-and-sum grid over [new tokens x pool slots], 7 of this file's 17 s at T = 9 (gpt2-paged).
const gradDims = new Map([...exampleDims, ['T', 4]]);

// attention-lse.tfx is attention alone: no logits to put a loss on.
const withLogits = exampleFiles.filter((f) => !f.endsWith('attention-lse.tfx'));

describe('grad on every example (float64 interpreter)', () => {
  for (const file of withLogits) {
    it(`${file}: loss = cross-entropy of the logits, every gradient finite`, () => {
      const ref = exampleReference(file, { weights: 1, inputs: 2 }, gradDims);
      const logits = ref.want.get('logits');
      if (logits === undefined) throw new Error(`${file} has no logits`);
      const targets = targetsFor(logits, 3);
      const { graph, grads } = backwardOf(ref.graph);
      const out = interpret(graph, { inputs: new Map([...ref.inputs, ['targets', targets]]), weights: ref.weights }).outputs;
      expect(out.get('loss')?.data[0]).toBeCloseTo(crossEntropy(logits, targets), 10);
      expect(grads.length).toBe(ref.weights.size);
      for (const name of grads) {
        const t = out.get(name);
        expect(t?.data.every(Number.isFinite), name).toBe(true);
      }
      // Not all zero: the loss depends on the weights (at least on most of them).
      const nonzero = grads.filter((n) => out.get(n)?.data.some((x) => x !== 0));
      expect(nonzero.length).toBeGreaterThan(grads.length / 2);
    });
  }

  it('relative-bias: the bias table read through a clamped distance agrees with finite differences', () => {
    const file = 'examples/variants/relative-bias.tfx';
    const ref = exampleReference(file, { weights: 1, inputs: 2 }, gradDims);
    const logits = ref.want.get('logits');
    if (logits === undefined) throw new Error('no logits');
    const inputs = new Map([...ref.inputs, ['targets', targetsFor(logits, 3)]]);
    const { graph } = backwardOf(ref.graph);
    const got = interpret(graph, { inputs, weights: ref.weights }).outputs.get('grad.rel_bias.weight');
    const table = ref.weights.get('rel_bias.weight');
    if (got === undefined || table === undefined) throw new Error('no rel_bias gradient');
    const withLoss = withCrossEntropyLoss(ref.graph, {}, () => {});
    if (withLoss === undefined) throw new Error('no loss');
    const loss = (data: Float64Array): number => interpret(withLoss, { inputs, weights: new Map([...ref.weights, ['rel_bias.weight', { ...table, data }]]) }).outputs.get('loss')?.data[0] ?? NaN;
    let worst = 0;
    const scale = Math.max(...got.data.map(Math.abs));
    // Every 7th entry (the interpreter runs the model 4 times per entry).
    for (let j = 0; j < table.data.length; j += 7) {
      const at = (h: number): number => {
        const d = table.data.slice();
        d[j] = (d[j] ?? 0) + h;
        return loss(d);
      };
      const D = (h: number): number => (at(h) - at(-h)) / (2 * h);
      const fd = (4 * D(5e-4) - D(1e-3)) / 3;
      worst = Math.max(worst, Math.abs(fd - (got.data[j] ?? NaN)) / scale);
    }
    expect(scale).toBeGreaterThan(0);
    expect(worst).toBeLessThanOrEqual(1e-8);
  });
});
