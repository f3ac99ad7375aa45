// Every example model (examples/**/*.tfx at a small config) compiled with the default, fused
// pipeline and run on WebGPU matches the float64 interpreter on the unfused graph: every output,
// max relative error <= 1e-4 with a floor of 1% of the output's largest value (f32 kernels vs float64).
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
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
import { relError } from '../helpers/tensors.js';
import { testDevice } from './helpers.js';

function tfxFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? tfxFiles(join(dir, e.name)) : e.name.endsWith('.tfx') ? [join(dir, e.name)] : []))
    .sort();
}
const examples = tfxFiles('examples').map((f) => relative('.', f));

/** A small size for each example, in the config names it declares (unknown names are not set). */
function smallOverrides(file: string): Record<string, number> {
  if (file.endsWith('llama-nocache.tfx')) return { vocab: 64, d: 32, heads: 4, kv_heads: 2, layers: 2, ffn: 48 };
  if (file.endsWith('llama.tfx')) return { vocab: 64, d: 32, heads: 4, kv_heads: 2, layers: 2, ffn: 48 };
  if (file.endsWith('transformer.tfx')) return { vocab: 64, d: 32, heads: 4, layers: 1, ffn: 64 };
  if (file.endsWith('charlm.tfx')) return {};
  if (file.endsWith('attention-lse.tfx')) return {}; // attention alone, small by default
  return { vocab: 64, ctx: 32, d: 32, heads: 2, layers: 2 };
}
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
