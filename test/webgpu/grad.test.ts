// The backward graph of `grad` (src/autodiff/) compiled by the normal pipeline and run on WebGPU
// (lavapipe here): GPT-2 tiny's cross-entropy loss and its gradient w.r.t. every weight, against
// the float64 interpreter on the same backward graph, seeded weights, tokens and targets.
// Bar: max rel error <= 1e-4 per tensor (floor 1% of max|ref|, test/helpers/tensors.ts), f32.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { gradGraph } from '../../src/autodiff/grad.js';
import { withCrossEntropyLoss } from '../../src/autodiff/loss.js';
import { checkSource } from '../../src/check/check-source.js';
import { gatherIndexRanges } from '../../src/cli/webgpu.js';
import { randomWeights } from '../../src/cli/random.js';
import { compilePlan } from '../../src/compile/plan.js';
import type { Diagnostic } from '../../src/diag/diagnostic.js';
import type { Graph } from '../../src/graph/ir.js';
import { interpret } from '../../src/interp/interpret.js';
import { neededTensors } from '../../src/io/check-tensors.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext } from '../../src/passes/pass.js';
import { graphPasses, pipelines } from '../../src/passes/pipeline.js';
import { createSession } from '../../src/runtime/session.js';
import { targetLimitsOf } from '../../src/runtime/target.js';
import { relError, tensorFor } from '../helpers/tensors.js';
import { deviceAndSessions } from './helpers.js';

const gpu = deviceAndSessions();
const tiny = { layers: 2, d: 32, heads: 4, vocab: 64, ctx: 16 };

function backward(): Graph {
  const file = 'examples/gpt2.tfx';
  const r = checkSource(readFileSync(file, 'utf8'), file, new Map(Object.entries(tiny)));
  const errors: Diagnostic[] = [...r.diagnostics];
  const withLoss = r.graph === undefined ? undefined : withCrossEntropyLoss(r.graph, {}, (d) => errors.push(d));
  const g = withLoss === undefined ? undefined : gradGraph(withLoss, { output: 'loss' }, (d) => errors.push(d));
  expect(errors.map((d) => d.message)).toEqual([]);
  if (g === undefined) throw new Error('no backward graph');
  return g.graph;
}

describe('grad on WebGPU vs the float64 interpreter (GPT-2 tiny, B=2, T=8)', () => {
  for (const fused of [false, true]) {
    it(`every gradient within 1e-4 (${fused ? 'fused pipeline' : 'unfused: --no-fuse'})`, { timeout: 600_000 }, async () => {
      const g = backward();
      const passes = fused ? pipelines.webgpu : graphPasses;
      const compiled = runPipeline(g, passes, createPassContext({ target: 'webgpu', verify: true }));
      const plan = compilePlan(compiled, { target: targetLimitsOf(gpu.dev) });
      expect(plan.steps.some((s) => s.kernel.includes('scatter_add'))).toBe(true);
      const session = await createSession(gpu.dev, plan, { inputRanges: gatherIndexRanges(compiled) });
      gpu.sessions.push(session);
      const ds: Diagnostic[] = [];
      const weights = randomWeights(neededTensors(g), 5, new Map([['B', 2], ['T', 8]]), ds);
      expect(ds).toEqual([]);
      const inputs = new Map([
        ['tokens', tensorFor('i32', [2, 8], 6, tiny.vocab)],
        ['targets', tensorFor('i32', [2, 8], 7, tiny.vocab)],
      ]);
      session.loadWeights(weights);
      const got = await session.run(inputs);
      const want = interpret(g, { inputs, weights }).outputs;
      expect(want.size).toBe(1 + 4 + 12 * tiny.layers);
      let worst = 0;
      for (const [name, ref] of want) {
        const out = got.outputs.get(name);
        expect(out?.shape, name).toEqual(ref.shape);
        const err = relError(out?.data ?? [], ref);
        worst = Math.max(worst, err);
        expect(err, name).toBeLessThanOrEqual(1e-4);
      }
      console.log(`gpt2 tiny backward (${fused ? 'fused' : 'unfused'}): ${plan.steps.length} launches, ${plan.kernels.length} kernels, ${want.size} outputs, worst rel error ${worst.toExponential(2)}`);
    });
  }
});
