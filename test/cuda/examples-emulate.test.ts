// Every example model (examples/**/*.tfx at a small config) through the CUDA backend: the CUDA
// pipeline's fusion, kernels lowered for cudaLimits, the generated launcher compiled with g++
// against cuda_emu.h and run on the CPU, vs the float64 interpreter on the unfused source graph:
// every output <= 1e-4 relative (floor at 1e-2 of the output's scale; f32 kernels vs float64).
// Issue 6: "every example ... passes the emulated tests against the interpreter".
import { describe, expect, it } from 'vitest';
import { compilePlan } from '../../src/compile/plan.js';
import { cudaLimits } from '../../src/kernel/schedule/schedule.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext } from '../../src/passes/pass.js';
import { pipelines } from '../../src/passes/pipeline.js';
import { runPlanEmulated } from '../../src/runtime-cuda/emulate.js';
import { exampleFiles, exampleReference } from '../helpers/examples.js';
import { relError } from '../helpers/tensors.js';
import { bindDims } from './helpers.js';

describe('every example on the CUDA emulator (fused CUDA pipeline) matches the float64 interpreter', () => {
  it('finds the examples', () => {
    expect(exampleFiles.length).toBeGreaterThanOrEqual(16);
  });
  it.each(exampleFiles)('%s', (file) => {
    const { graph, weights, inputs, want } = exampleReference(file, { weights: 11, inputs: 12 });

    const fused = runPipeline(graph, pipelines.cuda, createPassContext({ target: 'cuda' }));
    const plan = compilePlan(fused, { target: cudaLimits });
    const bound = bindDims(fused, { inputs, weights });
    const feeds = new Map([...inputs, ...weights].map(([k, t]) => [k, t.data]));
    const got = runPlanEmulated(plan, bound, feeds).outputs;
    expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
    for (const [name, w] of want) {
      const err = relError(got.get(name) ?? [], w);
      console.log(`${file} ${name}: max rel error ${err.toExponential(2)} on the CUDA emulator (${plan.steps.length} launches)`);
      expect(err, name).toBeLessThanOrEqual(1e-4);
    }
  }, 600_000);
});
