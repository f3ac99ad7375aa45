// A training step as one compiled graph (src/train/step.ts) run by the Trainer
// (src/runtime/train.ts) on WebGPU with the state on the GPU, against the same step on the
// float64 interpreter. The model is a linear regression whose gradient is written by hand in the
// source (so this checks the step graph, AdamW, the state plumbing and the runners, not autodiff):
// five steps, losses and weights within 1e-5 relative (f32 over five dependent steps).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { interpTrainBackend } from '../../src/cli/train-backends.js';
import { compilePlan } from '../../src/compile/plan.js';
import { strAttr } from '../../src/graph/ir.js';
import { verifyGraph } from '../../src/graph/verify.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext } from '../../src/passes/pass.js';
import { pipelines } from '../../src/passes/pipeline.js';
import type { AcquiredDevice } from '../../src/runtime/device.js';
import { type HostTensor, createSession } from '../../src/runtime/session.js';
import { targetLimitsOf } from '../../src/runtime/target.js';
import { Trainer, webgpuTrainBackend } from '../../src/runtime/train.js';
import { trainStepGraph } from '../../src/train/step.js';
import { tensorFor, tfxGraph } from '../helpers/tensors.js';
import { testDevice } from './helpers.js';

const src = `
dims N
weight w: f32[4, 3]
weight b: f32[3]
input x: f32[N, 4]
input y: f32[N, 3]
output loss: f32[]
output gw: f32[4, 3]
output gb: f32[3]
model linreg {
  r = x @ w + b - y
  loss = sum(sum(r * r)) / 12.0
  gw = transpose(x) @ r * (2.0 / 12.0)
  gb = sum(transpose(r)) * (2.0 / 12.0)
}
`;

let dev: AcquiredDevice;
beforeAll(async () => {
  dev = await testDevice();
});
afterAll(() => dev.device.destroy());

const host = (shape: number[], seed: number, scale = 1): HostTensor => ({ dtype: 'f32', shape, data: Float32Array.from(tensorFor('f32', shape, seed, 11, scale).data) });

describe('a training step graph on WebGPU', () => {
  it('follows the float64 interpreter over five AdamW steps with the state kept on the GPU', async () => {
    const g = tfxGraph(src, 'linreg.tfx');
    const out = (name: string): number => g.outputs.find((o) => o.name === name)?.value ?? -1;
    const step = trainStepGraph(g, new Map([['w', out('gw')], ['b', out('gb')]]));
    expect(verifyGraph(step)).toEqual([]);
    // Weights became inputs; the outputs are the loss, the new state and the gradient norm.
    expect(step.nodes.some((n) => n.op === 'weight')).toBe(false);
    expect(step.outputs.map((o) => o.name).sort()).toEqual(['adam.m.b', 'adam.m.w', 'adam.v.b', 'adam.v.w', 'b', 'loss', 'train.grad_norm', 'w']);
    expect(step.nodes.filter((n) => n.op === 'input').map((n) => strAttr(n, 'name')).sort()).toEqual(['adam.m.b', 'adam.m.w', 'adam.v.b', 'adam.v.w', 'b', 'train.bc1', 'train.bc2', 'train.lr', 'w', 'x', 'y']);

    const fused = runPipeline(step, pipelines.webgpu, createPassContext({ target: 'webgpu' }));
    const session = await createSession(dev, compilePlan(fused, { target: targetLimitsOf(dev) }));
    const init = new Map([['w', host([4, 3], 1)], ['b', host([3], 2)]]);
    const gpu = new Trainer(webgpuTrainBackend(dev.device, session), init);
    const ref = new Trainer(interpTrainBackend(step), init);
    const losses: number[] = [];
    for (let s = 0; s < 5; s++) {
      const batch = new Map([['x', host([4, 4], 10 + s)], ['y', host([4, 3], 20 + s)]]);
      const [a, want] = [await gpu.step(batch, 0.05), await ref.step(batch, 0.05)];
      expect(Math.abs(a.loss - want.loss) / want.loss, `loss at step ${s}`).toBeLessThanOrEqual(1e-5);
      expect(Math.abs(a.gradNorm - want.gradNorm) / want.gradNorm).toBeLessThanOrEqual(1e-5);
      losses.push(want.loss);
    }
    const [got, want] = [await gpu.weights(), await ref.weights()];
    for (const n of ['w', 'b']) {
      const g1 = Array.from(got.get(n)?.data ?? []);
      const w1 = Array.from(want.get(n)?.data ?? []);
      expect(g1.length).toBe(w1.length);
      const scale = Math.max(...w1.map(Math.abs));
      expect(Math.max(...g1.map((v, i) => Math.abs(v - (w1[i] ?? NaN)))) / scale, n).toBeLessThanOrEqual(1e-5);
      // The weights moved: training happened.
      expect(w1).not.toEqual(Array.from(init.get(n)?.data ?? []));
    }
    expect(gpu.steps).toBe(5);
    gpu.dispose();
    session.dispose();
  });
});
