// The backward graph of `grad` (src/autodiff/) through the CUDA backend on the CPU emulator:
// GPT-2 tiny's cross-entropy loss and every weight's gradient (unfused pipeline) against the
// float64 interpreter on the same backward graph (f32 kernels: 1e-4 relative, relError's floor).
// The fused pipeline gave the same worst error (1.45e-5) once, but building and emulating it took
// 20 minutes at a load average of 250, so it is not part of the suite.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { gradGraph } from '../../src/autodiff/grad.js';
import { withCrossEntropyLoss } from '../../src/autodiff/loss.js';
import type { Diagnostic } from '../../src/diag/diagnostic.js';
import { compilePlan } from '../../src/compile/plan.js';
import { cudaLimits } from '../../src/kernel/schedule/schedule.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext } from '../../src/passes/pass.js';
import { unfusedPipeline } from '../../src/passes/pipeline.js';
import { runPlanEmulated } from '../../src/runtime-cuda/emulate.js';
import { tensorFor } from '../helpers/tensors.js';
import { bindDims, feedsFor, graphOf, interpret, relError } from './helpers.js';

const file = 'examples/gpt2.tfx';
const overrides = { vocab: 64, ctx: 16, d: 32, heads: 2, layers: 2 };

describe('grad on the CUDA CPU emulator vs the float64 interpreter (GPT-2 tiny, B=2, T=7)', () => {
  {
    const variant = 'unfused';
    it(`every gradient within 1e-4 (${variant})`, { timeout: 1_200_000 }, () => {
      const model = graphOf(readFileSync(file, 'utf8'), file, new Map(Object.entries(overrides)));
      const ds: Diagnostic[] = [];
      const withLoss = withCrossEntropyLoss(model, {}, (d) => ds.push(d));
      const r = withLoss === undefined ? undefined : gradGraph(withLoss, { output: 'loss' }, (d) => ds.push(d));
      expect(ds).toEqual([]);
      if (r === undefined) throw new Error('no backward');
      const g = runPipeline(r.graph, unfusedPipeline('cuda'), createPassContext({ target: 'cuda' }));
      const plan = compilePlan(g, { target: cudaLimits });
      const run = new Map([['B', 2], ['T', 7]]);
      const { weights } = feedsFor(model, run, 3, 0.5);
      const inputs = new Map([['tokens', tensorFor('i32', [2, 7], 4, overrides.vocab)], ['targets', tensorFor('i32', [2, 7], 5, overrides.vocab)]]);
      const ref = interpret(r.graph, { inputs, weights });
      const out = runPlanEmulated(plan, bindDims(g, { inputs, weights }), new Map([...inputs, ...weights].map(([k, t]) => [k, t.data])));
      expect(ref.outputs.size).toBe(1 + 4 + 12 * overrides.layers);
      let worst = 0;
      for (const [name, want] of ref.outputs) {
        const err = relError(out.outputs.get(name) ?? [], want);
        worst = Math.max(worst, err);
        expect(err, name).toBeLessThan(1e-4);
      }
      console.log(`gpt2 tiny backward on the CUDA emulator (${variant}): ${plan.steps.length} launches, worst rel error ${worst.toExponential(2)}`);
    });
  }
});
