// Every example model (examples/**/*.tfx at a small config) compiled with the default, fused
// pipeline and run on WebGPU matches the float64 interpreter on the unfused graph: every output,
// max relative error <= 1e-4 with a floor of 1% of the output's largest value (f32 kernels vs float64).
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkSource } from '../../src/check/check-source.js';
import { randomInputs, randomWeights } from '../../src/cli/random.js';
import type { Diagnostic } from '../../src/diag/diagnostic.js';
import { interpret } from '../../src/interp/interpret.js';
import { neededTensors } from '../../src/io/check-tensors.js';
import { compilePlan } from '../../src/kernel/compile-plan.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext } from '../../src/passes/pass.js';
import { pipelines } from '../../src/passes/pipeline.js';
import type { AcquiredDevice } from '../../src/runtime/device.js';
import { createSession } from '../../src/runtime/session.js';
import { targetLimitsOf } from '../../src/runtime/target.js';
import { exampleFiles, smallOverrides } from '../helpers/examples.js';
import { relError } from '../helpers/tensors.js';
import { testDevice } from './helpers.js';

const examples = exampleFiles;

// Run-time dims: a KV cache of 3 earlier positions, so decode-shaped masks see a non-empty past.
const dims = new Map(Object.entries({ B: 2, T: 9, S: 7, P: 3 }));

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
    const overrides = new Map(Object.entries(smallOverrides(file)));
    const r = checkSource(readFileSync(file, 'utf8'), file, overrides);
    if (r.graph === undefined) throw new Error(r.diagnostics.map((d) => d.message).join('; '));
    const ds: Diagnostic[] = [];
    const needed = neededTensors(r.graph);
    const weights = randomWeights(needed, 11, dims, ds);
    const inputs = randomInputs(r.graph, needed, 12, dims, ds);
    expect(ds).toEqual([]);
    const want = interpret(r.graph, { inputs, weights }).outputs;

    const fused = runPipeline(r.graph, pipelines.webgpu, createPassContext({ target: 'webgpu' }));
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
