// GPT-2-style embedding (wte[tokens] + wpe[arange(2, T + 2)]) fused into one fused_map kernel on
// WebGPU (lavapipe): in-range ids match the float64 interpreter, and out-of-range ids (no host range
// check in this session) read the clamped row, as the unfused gather kernel does, never past the table.
import { beforeAll, expect, it } from 'vitest';
import { DiagnosticSink } from '../../src/diag/diagnostic.js';
import type { Graph } from '../../src/graph/ir.js';
import { parseGraph } from '../../src/graph/parse.js';
import { interpret } from '../../src/interp/interpret.js';
import { makeTensor, maxRelError, type Tensor64 } from '../../src/base/tensor.js';
import { compilePlan } from '../../src/compile/plan.js';
import { lavapipeLimits } from '../../src/kernel/schedule/schedule.js';
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

const source = `graph m(B, T) {
  %0 = input {name="tokens"} : i32[B,T]
  %1 = weight {name="wte"} : f32[16,4]
  %2 = weight {name="wpe"} : f32[8,4]
  %3 = gather %1, %0 : f32[B,T,4]
  %4 = arange {end=dim(T + 2), start=dim(2)} : i32[T]
  %5 = gather %2, %4 : f32[T,4]
  %6 = add %3, %5 : f32[B,T,4]
  output "x" = %6
}`;

function graph(): Graph {
  const g = parseGraph(source, 'embedding.ir', new DiagnosticSink());
  if (g === undefined) throw new Error('bad IR');
  return g;
}
const table = (rows: number, scale: number): Tensor64 => makeTensor('f32', [rows, 4], Array.from({ length: rows * 4 }, (_, i) => Math.sin(i * scale) + i / 7));
const weights = new Map([['wte', table(16, 0.37)], ['wpe', table(8, 1.3)]]);
const tokens = (ids: number[]): Map<string, Tensor64> => new Map([['tokens', makeTensor('i32', [2, ids.length / 2], ids)]]);

it('runs the embedding as one kernel that equals the interpreter, clamping out-of-range ids', async () => {
  const fused = runPipeline(graph(), pipelines.webgpu, createPassContext({ target: 'webgpu', verify: true }));
  expect(compilePlan(fused, { target: lavapipeLimits }).kernels.length).toBe(1);
  for (const [ids, clamped] of [
    [[3, 0, 15, 7, 7, 1], [3, 0, 15, 7, 7, 1]],
    [[-3, 99, 5, 16, 2, -2147483648], [0, 15, 5, 15, 2, 0]],
  ] as const) {
    const got = (await runPlan(dev, fused, weights, tokens([...ids]))).get('x');
    const want = interpret(graph(), { inputs: tokens([...clamped]), weights }).outputs.get('x');
    if (got === undefined || want === undefined) throw new Error('no output');
    // One f32 add of f32-representable table values: 1e-6 relative covers its rounding.
    expect(maxRelError(got, want, 1e-6), JSON.stringify(ids)).toBeLessThan(1e-6);
  }
});
