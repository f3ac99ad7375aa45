// The fused cross-entropy's memory claim on a whole training-step plan (forward, loss, backward,
// AdamW: src/train/step.ts) of GPT-2 tiny (tied `@ transpose(wte)`): with the fused loss no plan
// buffer holds N x V elements (N = B*T rows), only the chunk's c x V logits tile; the same check
// on the unfused loss's plan finds them (so the assertion can fail). Plus the default chunk.
import { describe, expect, it } from 'vitest';
import { compilePlan } from '../../../src/compile/plan.js';
import { printKernels } from '../../../src/kernel/ir/print.js';
import { lowerToKernels } from '../../../src/kernel/lower/lower.js';
import { verifyKernels } from '../../../src/kernel/ir/verify.js';
import { chooseCrossEntropySchedule, chooseSchedule, lavapipeLimits, webgpuDefaultLimits } from '../../../src/kernel/schedule/schedule.js';
import { evalSize } from '../../../src/kernel/plan/plan.js';
import { runPipeline } from '../../../src/passes/driver.js';
import { createPassContext } from '../../../src/passes/pass.js';
import { pipelines } from '../../../src/passes/pipeline.js';
import { trainStepGraph } from '../../../src/train/step.js';
import { fusedTrainingGrad } from '../../helpers/training.js';

const config = { vocab: 64, ctx: 32, d: 32, heads: 2, layers: 2 };
const dims = { B: 2, T: 7 };
const N = dims.B * dims.T;
const V = config.vocab;

function stepPlanBuffers(fuseLoss: boolean, limits = lavapipeLimits): { sizes: number[]; kernels: string } {
  const g = fusedTrainingGrad('examples/gpt2.tfx', config, dims, fuseLoss, true);
  const gradOf = new Map(g.outputs.filter((o) => o.name.startsWith('grad.')).map((o) => [o.name.slice('grad.'.length), o.value]));
  const step = trainStepGraph(g, gradOf);
  const compiled = runPipeline(step, pipelines.webgpu, createPassContext({ target: 'webgpu', verify: true }));
  const schedule = { ...chooseSchedule(limits), crossEntropy: { chunkRows: 5 } };
  const program = lowerToKernels(compiled, limits, schedule);
  expect(verifyKernels(program, limits)).toEqual([]);
  const plan = compilePlan(compiled, { target: limits, schedule });
  return { sizes: plan.buffers.map((b) => evalSize(b.elements, new Map())), kernels: printKernels(program) };
}

describe('the training step plan of GPT-2 tiny', () => {
  it('has no N x V buffer with the fused loss (chunks of 5 rows: a 5 x V tile)', () => {
    for (const limits of [lavapipeLimits, webgpuDefaultLimits]) {
      const { sizes, kernels } = stepPlanBuffers(true, limits);
      expect(sizes.filter((s) => s === N * V)).toEqual([]);
      expect(sizes.filter((s) => s === 5 * V)).toHaveLength(1);
      // The chunk schedule is printed with the row kernels: chunks 5, 5, 4.
      expect(kernels).toContain('cross_entropy: chunk 1/3 (rows 0..4 of 14; chunkRows 5)');
      expect(kernels).toContain('cross_entropy: chunk 3/3 (rows 10..13 of 14; chunkRows 5)');
    }
  });

  it('has N x V buffers with the unfused loss', () => {
    const { sizes } = stepPlanBuffers(false);
    expect(sizes.filter((s) => s === N * V).length).toBeGreaterThan(0);
  });
});

describe('chooseCrossEntropySchedule', () => {
  it('keeps the f32 logits tile within 64 MiB: GPT-2 small (V = 50257) takes 320 rows of 8192', () => {
    const s = chooseCrossEntropySchedule(8192, 50257);
    expect(s.chunkRows).toBe(320);
    expect(s.chunkRows * 50257 * 4).toBeLessThanOrEqual(64 * 1024 * 1024);
    expect((s.chunkRows + 64) * 50257 * 4).toBeGreaterThan(64 * 1024 * 1024);
  });
  it('takes every row when they fit, and at least one', () => {
    expect(chooseCrossEntropySchedule(14, 64).chunkRows).toBe(14);
    expect(chooseCrossEntropySchedule(100, 1e9).chunkRows).toBe(1);
  });
});
