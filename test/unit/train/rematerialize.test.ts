// A training step (forward, cross-entropy, backward, AdamW) through the target pipeline with and
// without rematerialize (src/passes/trainingPipeline): the norms' and activations' buffers no
// longer live from the forward to the backward, so the step's temporaries shrink, and every
// output (loss, new weights, moments) is the same on the float64 interpreter.
import { describe, expect, it } from 'vitest';
import { Reporter } from '../../../src/cli/report.js';
import { trainingForward, trainingGraphs } from '../../../src/cli/train.js';
import { compilePlan } from '../../../src/compile/plan.js';
import type { Graph } from '../../../src/graph/ir.js';
import { strAttr } from '../../../src/graph/ir.js';
import { interpret } from '../../../src/interp/interpret.js';
import { webgpuDefaultLimits } from '../../../src/kernel/schedule/schedule.js';
import { runPipeline } from '../../../src/passes/driver.js';
import { createPassContext } from '../../../src/passes/pass.js';
import { trainingPipeline } from '../../../src/passes/pipeline.js';
import { planTempBytes } from '../../../src/runtime/memory.js';
import { dimConstValue } from '../../../src/base/dim.js';
import { makeTensor, type Tensor64 } from '../../../src/base/tensor.js';
import { tensorFor } from '../../helpers/tensors.js';

const cases = [
  { file: 'examples/gpt2.tfx', batch: 4, set: { layers: 3, d: 32, heads: 2, vocab: 48, ctx: 32 }, recomputed: ['gelu', 'layernorm'] },
  { file: 'examples/charlm/charlm.tfx', batch: 2, set: {}, recomputed: ['rmsnorm', 'silu'] },
];

/** Seeded step inputs: token ids below the vocabulary, AdamW scalars, weights and moments (v >= 0). */
function feedsOf(g: Graph, vocab: number): Map<string, Tensor64> {
  const inputs = new Map<string, Tensor64>();
  for (const n of g.nodes) {
    if (n.op !== 'input') continue;
    const name = strAttr(n, 'name');
    const shape = n.type.shape.map((d) => dimConstValue(d) ?? NaN);
    if (n.type.dtype === 'i32') inputs.set(name, tensorFor('i32', shape, n.id, vocab));
    else if (name.startsWith('train.')) inputs.set(name, makeTensor('f32', shape, [name === 'train.lr' ? 1e-3 : 0.5]));
    else if (name.startsWith('adam.v.')) inputs.set(name, makeTensor('f32', shape, Array.from(tensorFor('f32', shape, n.id, 0, 1e-3).data, Math.abs)));
    else inputs.set(name, tensorFor('f32', shape, n.id, 0, 0.2));
  }
  return inputs;
}

/** The fused step graph of `file` at B = batch, T = seq, without and with rematerialize. */
function stepGraphs(file: string, batch: number, seq: number, set: Readonly<Record<string, number>>): { kept: Graph; remat: Graph; recomputed: number } {
  const rep = new Reporter(() => {});
  const fwd = trainingForward(rep, file, batch, seq, new Map(Object.entries(set)));
  const { stepGraph } = trainingGraphs(rep, fwd, { fuseAttention: true });
  const kept = runPipeline(stepGraph, trainingPipeline('webgpu', { fuse: true, recompute: false }), createPassContext({ target: 'webgpu' }));
  const ctx = createPassContext({ target: 'webgpu' });
  const remat = runPipeline(stepGraph, trainingPipeline('webgpu', { fuse: true, recompute: true }), ctx);
  return { kept, remat, recomputed: ctx.stats.ruleHits.get('rematerialize/recompute') ?? 0 };
}

const count = (g: Graph, op: string): number => g.nodes.filter((n) => n.op === op).length;

describe('rematerialize in the training pipeline', () => {
  for (const c of cases) {
    // B*T = 128 rows: the activations, not the weight-sized gradients, set the peak.
    it(`${c.file}: the norms and activations recomputed, fewer bytes of temporaries`, () => {
      const { kept, remat, recomputed } = stepGraphs(c.file, c.batch, 32, c.set);
      expect(recomputed).toBeGreaterThan(0);
      // The recomputed ops appear twice (forward, and again before the backward's read).
      for (const op of c.recomputed) expect(count(remat, op), op).toBeGreaterThan(count(kept, op));
      const before = planTempBytes(compilePlan(kept, { target: webgpuDefaultLimits }), new Map());
      const after = planTempBytes(compilePlan(remat, { target: webgpuDefaultLimits }), new Map());
      expect(after.maxLive).toBeLessThan(before.maxLive);
      expect(after.slots).toBeLessThan(before.slots);
    });

    it(`${c.file}: every step output (loss, weights, moments) equal on the float64 interpreter`, () => {
      const { kept, remat, recomputed } = stepGraphs(c.file, 1, 8, c.set);
      expect(recomputed).toBeGreaterThan(0);
      const inputs = feedsOf(kept, 'vocab' in c.set ? c.set.vocab : 96);
      const a = interpret(kept, { inputs, weights: new Map() }).outputs;
      const b = interpret(remat, { inputs, weights: new Map() }).outputs;
      expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
      for (const [name, t] of a) expect(b.get(name)?.data, name).toEqual(t.data);
    });
  }
});
