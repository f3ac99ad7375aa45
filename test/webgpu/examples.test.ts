// Every example model (examples/**/*.tfx at a small config) compiled with the default, fused
// pipeline and run on WebGPU matches the float64 interpreter on the unfused graph: every output,
// max relative error <= 1e-4 with a floor of 1% of the output's largest value (f32 kernels vs float64).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compilePlan } from '../../src/compile/plan.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext } from '../../src/passes/pass.js';
import { pipelines } from '../../src/passes/pipeline.js';
import type { AcquiredDevice } from '../../src/runtime/device.js';
import { createSession } from '../../src/runtime/session.js';
import { targetLimitsOf } from '../../src/runtime/target.js';
import { exampleFiles, exampleReference } from '../helpers/examples.js';
import { relError } from '../helpers/tensors.js';
import { testDevice } from './helpers.js';

const examples = exampleFiles;

let dev: AcquiredDevice;
beforeAll(async () => {
  dev = await testDevice();
});
afterAll(() => dev.device.destroy());

describe('every example on WebGPU (fused pipeline) matches the float64 interpreter', () => {
  it('finds the examples', () => {
    expect(examples.length).toBeGreaterThanOrEqual(14);
  });

  it.each(examples)('%s', { timeout: 180_000 }, async (file) => {
    const { graph, weights, inputs, want } = exampleReference(file, { weights: 11, inputs: 12 });

    const fused = runPipeline(graph, pipelines.webgpu, createPassContext({ target: 'webgpu' }));
    const plan = compilePlan(fused, { target: targetLimitsOf(dev) });
    const s = await createSession(dev, plan);
    try {
      s.loadWeights(weights);
      const got = (await s.run(inputs)).outputs;
      expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
      for (const [name, w] of want) {
        const g = got.get(name);
        expect(g?.shape).toEqual(w.shape);
        const err = relError(g?.data ?? [], w);
        console.log(`${file} ${name}: max rel error ${err.toExponential(2)} (${plan.steps.length} launches)`);
        expect(err).toBeLessThanOrEqual(1e-4);
      }
    } finally {
      s.dispose();
    }
  });
});
