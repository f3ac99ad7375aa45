// The fused cross-entropy's CUDA kernels (src/kernel/lower/cross-entropy.ts) on the CPU emulator:
// charlm's loss and every weight gradient with the fused loss, in chunks of 5 rows of N = 14 (a
// remainder chunk of 4), against the unfused loss's graph on the float64 interpreter. The rest of
// the backward takes the unfused CUDA pipeline (the fused one builds and emulates for minutes).
// Bar: 1e-4 relative per tensor (relError's floor), f32.
import { describe, expect, it } from 'vitest';
import { compilePlan } from '../../src/compile/plan.js';
import { chooseSchedule, cudaLimits } from '../../src/kernel/schedule/schedule.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext } from '../../src/passes/pass.js';
import { unfusedPipeline } from '../../src/passes/pipeline.js';
import { runPlanEmulated } from '../../src/runtime-cuda/emulate.js';
import { fusedTrainingGrad, trainingFeeds } from '../helpers/training.js';
import { bindDims, interpret, relError } from './helpers.js';

describe('fused cross-entropy on the CUDA emulator (charlm, B=2, T=7, chunks of 5 rows)', () => {
  it('loss and every gradient within 1e-4 of the unfused float64 loss', { timeout: 1_200_000 }, () => {
    const file = 'examples/charlm/charlm.tfx';
    const config = { layers: 1, d: 32, ffn: 64 };
    const dims = { B: 2, T: 7 };
    const fused = fusedTrainingGrad(file, config, dims, true);
    const unfused = fusedTrainingGrad(file, config, dims, false);
    const g = runPipeline(fused, unfusedPipeline('cuda'), createPassContext({ target: 'cuda' }));
    const plan = compilePlan(g, { target: cudaLimits, schedule: { ...chooseSchedule(cudaLimits), crossEntropy: { chunkRows: 5 } } });
    expect(plan.steps.filter((s) => /_ce_rows(_\d+)?$/.test(s.kernel))).toHaveLength(3);
    const { weights, inputs } = trainingFeeds(unfused, new Map(Object.entries(dims)), 3, 96);
    const ref = interpret(unfused, { inputs, weights });
    const out = runPlanEmulated(plan, bindDims(g, { inputs, weights }), new Map([...inputs, ...weights].map(([k, t]) => [k, t.data])));
    let worst = 0;
    for (const [name, want] of ref.outputs) {
      const err = relError(out.outputs.get(name) ?? [], want);
      worst = Math.max(worst, err);
      expect(err, name).toBeLessThan(1e-4);
    }
    console.log(`charlm fused cross-entropy on the CUDA emulator: ${plan.steps.length} launches, loss + ${ref.outputs.size - 1} gradients, worst rel error ${worst.toExponential(2)}`);
  });
});
