// Views (fold-views) and norm prologues (fuse-norm) on WebGPU: the fused plans of GPT-2 tiny
// (prefill and a one-token step, which takes the split-K decode path) and Llama tiny (prefill
// and one decode step with a KV cache) agree with the float64 interpreter on the unfused graph.
import { readFileSync } from 'node:fs';
import { beforeAll, expect, it } from 'vitest';
import { checkSource } from '../../src/check/check-source.js';
import { interpret } from '../../src/interp/interpret.js';
import { maxRelError } from '../../src/base/tensor.js';
import { neededTensors } from '../../src/io/check-tensors.js';
import { randomInputs, randomWeights } from '../../src/cli/random.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext } from '../../src/passes/pass.js';
import { pipelines } from '../../src/passes/pipeline.js';
import type { AcquiredDevice } from '../../src/runtime/device.js';
import { testDevice } from './helpers.js';
import { runPlan } from './run-plan.js';

let dev: AcquiredDevice;
beforeAll(async () => {
  dev = await testDevice();
}, 240_000);

const cases = [
  ['examples/gpt2.tfx', [['layers', 1], ['d', 32], ['heads', 4], ['vocab', 64], ['ctx', 16]], [['B', 2], ['T', 7]]],
  ['examples/gpt2.tfx', [['layers', 1], ['d', 32], ['heads', 4], ['vocab', 64], ['ctx', 16]], [['B', 2], ['T', 1]]],
  ['examples/llama.tfx', [['layers', 1], ['d', 32], ['heads', 4], ['kv_heads', 2], ['vocab', 64], ['ffn', 48]], [['B', 1], ['T', 5], ['P', 0]]],
  ['examples/llama.tfx', [['layers', 1], ['d', 32], ['heads', 4], ['kv_heads', 2], ['vocab', 64], ['ffn', 48]], [['B', 1], ['T', 1], ['P', 5]]],
] as const;

for (const [file, ov, ds] of cases) {
  it(`${file} ${ds.map(([k, v]) => `${k}=${v}`).join(' ')}: the fused plan with views and norm prologues equals the interpreter`, async () => {
    const r = checkSource(readFileSync(file, 'utf8'), file, new Map(ov));
    if (r.graph === undefined) throw new Error('no graph');
    const dims = new Map<string, number>(ds);
    const needed = neededTensors(r.graph);
    const weights = randomWeights(needed, 11, dims, []);
    const inputs = randomInputs(r.graph, needed, 12, dims, []);
    const fused = runPipeline(r.graph, pipelines.webgpu, createPassContext({ target: 'webgpu', verify: true }));
    // The passes under test fired: views feed the matmuls/attention, no norm kernel is left.
    expect(fused.nodes.some((n) => n.op === 'view')).toBe(true);
    expect(fused.nodes.some((n) => n.op === 'layernorm' || n.op === 'rmsnorm')).toBe(false);
    const want = interpret(r.graph, { inputs, weights }).outputs;
    const got = await runPlan(dev, fused, weights, inputs);
    for (const [name, w] of want) {
      const a = got.get(name);
      if (a === undefined) throw new Error(`missing ${name}`);
      // f32 kernels vs float64: 1e-4 relative (floor 1e-3 of the output's scale).
      const floor = 1e-3 * Math.max(1e-30, ...Array.from(w.data, Math.abs));
      expect(maxRelError(a, w, floor), name).toBeLessThan(1e-4);
    }
  }, 240_000);
}
