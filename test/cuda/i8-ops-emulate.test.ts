// test/fixtures/i8-ops.tfx through the CUDA backend on the CPU emulator (`signed char` buffers,
// clamped casts, rintf for round), fused and unfused, against the float64 interpreter: i8 outputs
// equal, f32 outputs within 1e-6 (the inputs of test/webgpu/i8-ops.test.ts).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { compilePlan } from '../../src/compile/plan.js';
import { interpret } from '../../src/interp/interpret.js';
import { cudaLimits } from '../../src/kernel/schedule/schedule.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext } from '../../src/passes/pass.js';
import { pipelines, unfusedPipeline } from '../../src/passes/pipeline.js';
import { runPlanEmulated } from '../../src/runtime-cuda/emulate.js';
import { tfxGraph } from '../helpers/tensors.js';
import { i8OpsInputs } from '../helpers/i8-ops.js';

describe('i8 kernels on the CUDA emulator', () => {
  const g = tfxGraph(readFileSync('test/fixtures/i8-ops.tfx', 'utf8'), 'test/fixtures/i8-ops.tfx');
  const inputs = i8OpsInputs();
  const want = interpret(g, { inputs, weights: new Map() }).outputs;
  for (const variant of ['fused', 'unfused'] as const) {
    it(`${variant}: every output matches the interpreter`, () => {
      const passes = variant === 'fused' ? pipelines.cuda : unfusedPipeline('cuda');
      const plan = compilePlan(runPipeline(g, passes, createPassContext({ target: 'cuda' })), { target: cudaLimits });
      const got = runPlanEmulated(plan, new Map([['N', 5], ['M', 3]]), new Map([...inputs].map(([k, t]) => [k, t.data]))).outputs;
      for (const [name, w] of want) {
        const t = got.get(name);
        if (w.dtype === 'i8') expect([...(t ?? [])], name).toEqual([...w.data]);
        else [...w.data].forEach((v, i) => expect(Math.abs((t?.[i] ?? NaN) - v), `${name}[${i}]`).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(v))));
      }
    }, 300_000);
  }
});
