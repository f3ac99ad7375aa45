// Every example model (examples/**/*.tfx at a small config) through the CUDA backend: the CUDA
// pipeline's fusion, kernels lowered for cudaLimits, the generated launcher compiled with g++
// against cuda_emu.h and run on the CPU, vs the float64 interpreter on the unfused source graph:
// every output <= 1e-4 relative (floor at 1e-2 of the output's scale; f32 kernels vs float64).
// Issue 6: "every example ... passes the emulated tests against the interpreter".
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { checkSource } from '../../src/check/check-source.js';
import { randomInputs, randomWeights } from '../../src/cli/random.js';
import type { Diagnostic } from '../../src/diag/diagnostic.js';
import { interpret } from '../../src/interp/interpret.js';
import { neededTensors } from '../../src/io/check-tensors.js';
import { compilePlan } from '../../src/kernel/compile-plan.js';
import { cudaLimits } from '../../src/kernel/schedule.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext } from '../../src/passes/pass.js';
import { pipelines } from '../../src/passes/pipeline.js';
import { runPlanEmulated } from '../../src/runtime-cuda/emulate.js';
import { exampleFiles, smallOverrides } from '../helpers/examples.js';
import { relError } from '../helpers/tensors.js';
import { bindDims } from './helpers.js';

// Run-time dims as the WebGPU example run uses: a KV cache of 3 earlier positions.
const dims = new Map(Object.entries({ B: 2, T: 9, S: 7, P: 3 }));

describe('every example on the CUDA emulator (fused CUDA pipeline) matches the float64 interpreter', () => {
  it('finds the examples', () => {
    expect(exampleFiles.length).toBeGreaterThanOrEqual(16);
  });
  it.each(exampleFiles)('%s', (file) => {
    const r = checkSource(readFileSync(file, 'utf8'), file, new Map(Object.entries(smallOverrides(file))));
    if (r.graph === undefined) throw new Error(r.diagnostics.map((d) => d.message).join('; '));
    const ds: Diagnostic[] = [];
    const needed = neededTensors(r.graph);
    const weights = randomWeights(needed, 11, dims, ds);
    const inputs = randomInputs(r.graph, needed, 12, dims, ds);
    expect(ds).toEqual([]);
    const want = interpret(r.graph, { inputs, weights }).outputs;

    const fused = runPipeline(r.graph, pipelines.cuda, createPassContext({ target: 'cuda' }));
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
