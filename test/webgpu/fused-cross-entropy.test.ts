// The fused cross-entropy's kernels (src/kernel/lower/cross-entropy.ts) on WebGPU (lavapipe): the
// loss and every weight gradient of charlm (untied `@ transpose(lm_head)`) and GPT-2 tiny (tied
// `@ transpose(wte)`) with the fused loss, at a chunk of 5 rows that does not divide N = 14 (a
// remainder chunk of 4), against the unfused loss's graph on the float64 interpreter.
// Bar: max rel error <= 1e-4 per tensor (floor 1% of max|ref|, test/helpers/tensors.ts), f32.
import { describe, expect, it } from 'vitest';
import { compilePlan } from '../../src/compile/plan.js';
import { interpret } from '../../src/interp/interpret.js';
import { chooseSchedule } from '../../src/kernel/schedule/schedule.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext } from '../../src/passes/pass.js';
import { pipelines } from '../../src/passes/pipeline.js';
import { createSession } from '../../src/runtime/session.js';
import { targetLimitsOf } from '../../src/runtime/target.js';
import { relError } from '../helpers/tensors.js';
import { fusedTrainingGrad, trainingFeeds } from '../helpers/training.js';
import { deviceAndSessions } from './helpers.js';

const gpu = deviceAndSessions();

const models = [
  { file: 'examples/charlm/charlm.tfx', config: { layers: 1, d: 32, ffn: 64 }, vocab: 96 },
  { file: 'examples/gpt2.tfx', config: { vocab: 64, ctx: 32, d: 32, heads: 2, layers: 2 }, vocab: 64 },
];

describe('fused cross-entropy on WebGPU vs the unfused loss on the float64 interpreter', () => {
  for (const m of models) {
    it(`${m.file}: B=2, T=7, chunks of 5 rows`, { timeout: 600_000 }, async () => {
      const dims = { B: 2, T: 7 };
      const fused = fusedTrainingGrad(m.file, m.config, dims, true, true);
      const unfused = fusedTrainingGrad(m.file, m.config, dims, false);
      const compiled = runPipeline(fused, pipelines.webgpu, createPassContext({ target: 'webgpu', verify: true }));
      const limits = targetLimitsOf(gpu.dev);
      const plan = compilePlan(compiled, { target: limits, schedule: { ...chooseSchedule(limits), crossEntropy: { chunkRows: 5 } } });
      // Three chunks (5, 5, 4 rows): a row kernel each.
      expect(plan.steps.filter((s) => s.kernel.endsWith('_ce_rows') || /_ce_rows_\d+$/.test(s.kernel))).toHaveLength(3);
      const session = await createSession(gpu.dev, plan);
      gpu.sessions.push(session);
      const { weights, inputs } = trainingFeeds(unfused, new Map(Object.entries(dims)), 3, m.vocab);
      session.loadWeights(weights);
      const got = await session.run(inputs);
      const want = interpret(unfused, { inputs, weights }).outputs;
      expect([...got.outputs.keys()].sort()).toEqual([...want.keys()].sort());
      let worst = 0;
      for (const [name, ref] of want) {
        const err = relError(got.outputs.get(name)?.data ?? [], ref);
        worst = Math.max(worst, err);
        expect(err, name).toBeLessThanOrEqual(1e-4);
      }
      console.log(`${m.file}: fused cross-entropy on WebGPU, ${plan.steps.length} launches, loss + ${want.size - 1} gradients vs the unfused float64 loss: worst ${worst.toExponential(2)}`);
    });
  }
});
