// The fused and unfused plans of GPT-2 tiny give the same logits on WebGPU (lavapipe), and both
// match the float64 interpreter: fusion changes where values live, not what is computed.
import { readFileSync } from 'node:fs';
import { beforeAll, expect, it } from 'vitest';
import { checkSource } from '../../src/check/check-source.js';
import { interpret } from '../../src/interp/interpret.js';
import { maxRelError } from '../../src/base/tensor.js';
import { neededTensors } from '../../src/io/check-tensors.js';
import { randomInputs, randomWeights } from '../../src/cli/random.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext } from '../../src/passes/pass.js';
import { pipelines, unfusedPipeline } from '../../src/passes/pipeline.js';
import type { AcquiredDevice } from '../../src/runtime/device.js';
import { testDevice } from './helpers.js';
import { runPlan } from './run-plan.js';

let dev: AcquiredDevice;
beforeAll(async () => {
  dev = await testDevice();
}, 240_000);

it('GPT-2 tiny: fused and unfused plans agree with each other and the interpreter', async () => {
  const r = checkSource(readFileSync('examples/gpt2.tfx', 'utf8'), 'gpt2.tfx', new Map([['layers', 1], ['d', 32], ['heads', 4], ['vocab', 64], ['ctx', 16]]));
  if (r.graph === undefined) throw new Error('no graph');
  const dims = new Map([['B', 2], ['T', 9]]);
  const needed = neededTensors(r.graph);
  const weights = randomWeights(needed, 7, dims, []);
  const inputs = randomInputs(r.graph, needed, 8, dims, []);
  const fused = runPipeline(r.graph, pipelines.webgpu, createPassContext({ target: 'webgpu', verify: true }));
  const unfused = runPipeline(r.graph, unfusedPipeline('webgpu'), createPassContext({ target: 'webgpu', verify: true }));
  expect(fused.nodes.some((n) => n.op === 'fused_matmul')).toBe(true);
  expect(unfused.nodes.some((n) => n.op.startsWith('fused_'))).toBe(false);
  const want = interpret(r.graph, { inputs, weights }).outputs.get('logits');
  const a = (await runPlan(dev, fused, weights, inputs)).get('logits');
  const b = (await runPlan(dev, unfused, weights, inputs)).get('logits');
  if (want === undefined || a === undefined || b === undefined) throw new Error('missing logits');
  // f32 kernels vs float64 through a layer: 1e-4 relative (floor 1e-3 of the logit scale).
  const floor = 1e-3 * Math.max(...Array.from(want.data, Math.abs));
  expect(maxRelError(a, want, floor)).toBeLessThan(1e-4);
  expect(maxRelError(b, want, floor)).toBeLessThan(1e-4);
  // Each is within 1e-4 of the reference, so within 2e-4 of each other (different f32 roundings).
  expect(maxRelError(a, b, floor)).toBeLessThan(2e-4);
}, 240_000);
