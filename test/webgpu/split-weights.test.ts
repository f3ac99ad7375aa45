// Weights split into row chunks (split-large-weights) on WebGPU: GPT-2 tiny compiled with a forced
// 8 KiB binding limit runs on the adapter and matches the unsplit graph under the float64
// interpreter; a buffer over the device's real binding limit is refused before dispatch (TFC402)
// naming the tensor, its size formula and dims.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { checkSource } from '../../src/check/check-source.js';
import { randomInputs, randomWeights } from '../../src/cli/random.js';
import type { Diagnostic } from '../../src/diag/diagnostic.js';
import type { Graph } from '../../src/graph/ir.js';
import { interpret } from '../../src/interp/interpret.js';
import { makeTensor } from '../../src/base/tensor.js';
import { neededTensors } from '../../src/io/check-tensors.js';
import { compilePlan } from '../../src/compile/plan.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext } from '../../src/passes/pass.js';
import { graphPasses, pipelines } from '../../src/passes/pipeline.js';
import { RuntimeError } from '../../src/runtime/errors.js';
import { createSession } from '../../src/runtime/session.js';
import { targetLimitsOf } from '../../src/runtime/target.js';
import { deviceAndSessions } from './helpers.js';

/** This file's device and the sessions its tests open (disposed after the file). */
const gpu = deviceAndSessions();

function checked(src: string, file: string, overrides: Record<string, number>): Graph {
  const r = checkSource(src, file, new Map(Object.entries(overrides)));
  expect(r.diagnostics.map((d) => d.message)).toEqual([]);
  if (r.graph === undefined) throw new Error('no graph');
  return r.graph;
}

describe('split weights on WebGPU', () => {
  it('GPT-2 tiny at an 8 KiB limit: chunked wte/wpe/projections match the unsplit float64 interpreter', { timeout: 300_000 }, async () => {
    const file = 'examples/gpt2.tfx';
    const g = checked(readFileSync(file, 'utf8'), file, { layers: 1, d: 32, heads: 4, vocab: 96, ctx: 16 });
    const dims = new Map([['B', 1], ['T', 5]]);
    const ds: Diagnostic[] = [];
    const needed = neededTensors(g);
    const weights = randomWeights(needed, 11, dims, ds);
    expect(randomInputs(g, needed, 12, dims, ds).get('tokens')?.shape).toEqual([1, 5]);
    expect(ds).toEqual([]);
    // Ids on both sides of the chunk boundary (48) and at both ends of the table.
    const inputs = new Map([['tokens', makeTensor('i32', [1, 5], [0, 47, 48, 95, 50])]]);
    const split = runPipeline(g, pipelines.webgpu, createPassContext({ target: 'webgpu', verify: true, maxBindingBytes: 8192 }));
    const plan = compilePlan(split, { target: targetLimitsOf(gpu.dev) });
    // wte is f32[96,32] = 12 KiB: two chunks of 48 rows, both loaded from the one tensor.
    const wte = plan.buffers.filter((b) => b.name === 'wte.weight');
    expect(wte.map((b) => b.rows)).toEqual([
      { start: 0, end: 48, total: 96 },
      { start: 48, end: 96, total: 96 },
    ]);
    for (const b of plan.buffers) if (b.kind === 'weight') expect(b.rows === undefined || (b.rows.end - b.rows.start) * 4 * 32 <= 8192).toBe(true);
    const session = await createSession(gpu.dev, plan);
    gpu.sessions.push(session);
    const { unused } = session.loadWeights(weights);
    expect(unused).toEqual([]);
    const r = await session.run(inputs);
    const want = interpret(runPipeline(g, graphPasses, createPassContext({ verify: true })), { inputs, weights }).outputs.get('logits');
    const got = r.outputs.get('logits');
    if (want === undefined || got === undefined) throw new Error('no logits');
    expect(got.shape).toEqual(want.shape);
    let scale = 0;
    let diff = 0;
    want.data.forEach((w, i) => {
      scale = Math.max(scale, Math.abs(w));
      diff = Math.max(diff, Math.abs((got.data[i] ?? NaN) - w));
    });
    expect(diff / scale).toBeLessThanOrEqual(1e-4);
  });

  it('refuses a temp over the device binding limit before dispatch with TFC402, naming tensor, formula and dims', { timeout: 120_000 }, async () => {
    const src = `dims T
input x: f32[T, 64]
weight w: f32[64, 4096] = "w"
output y: f32[T]
model big {
  h = x @ w
  y = sum(h, axis=-1)
}
`;
    const g = runPipeline(checked(src, 'big.tfx', {}), pipelines.webgpu, createPassContext({ target: 'webgpu', verify: true }));
    const plan = compilePlan(g, { target: targetLimitsOf(gpu.dev) });
    const session = await createSession(gpu.dev, plan);
    gpu.sessions.push(session);
    session.loadWeights({ w: { shape: [64, 4096], data: new Float32Array(64 * 4096) } });
    // h: f32[T, 4096] at T = 8193 is 134 234 112 bytes, just over 128 MiB.
    const err = await session.run({ x: { shape: [8193, 64], data: new Float32Array(8193 * 64) } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RuntimeError);
    expect((err as RuntimeError).code).toBe('TFC402');
    expect((err as RuntimeError).message).toMatch(/temp buffer \d+ f32\[T, 4096\], written by kernel \S+ \(big\.tfx:\d+:\d+.*(T\*4096|4096\*T) x 4 = 134234112 bytes.*at T=8193.*maxStorageBufferBindingSize.*smaller dims/);
  });
});
