// i8 tensors through WebGPU kernels (test/fixtures/i8-ops.tfx): saturating casts, casts back in
// the same fused body, transpose/slice/gather/concat, where, dequantization and round, with
// element counts that are not multiples of 4 (outputs share u32 words between invocations), fused
// and unfused, against the float64 interpreter: i8 outputs equal, f32 outputs within 1e-6.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compilePlan } from '../../src/compile/plan.js';
import { interpret } from '../../src/interp/interpret.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext } from '../../src/passes/pass.js';
import { pipelines, unfusedPipeline } from '../../src/passes/pipeline.js';
import type { AcquiredDevice } from '../../src/runtime/device.js';
import { createSession } from '../../src/runtime/session.js';
import { targetLimitsOf } from '../../src/runtime/target.js';
import { i8OpsInputs } from '../helpers/i8-ops.js';
import { tfxGraph } from '../helpers/tensors.js';
import { testDevice } from './helpers.js';

let dev: AcquiredDevice;
beforeAll(async () => {
  dev = await testDevice();
});
afterAll(() => dev.device.destroy());

describe('i8 kernels on WebGPU', () => {
  const g = tfxGraph(readFileSync('test/fixtures/i8-ops.tfx', 'utf8'), 'test/fixtures/i8-ops.tfx');
  const inputs = i8OpsInputs();
  const want = interpret(g, { inputs, weights: new Map() }).outputs;

  it('the reference saturates, rounds halves to even and keeps i8 outputs i8', () => {
    expect(want.get('a')?.dtype).toBe('i8');
    expect([...(want.get('a')?.data ?? [])]).toContain(127);
    expect([...(want.get('a')?.data ?? [])]).toContain(-128);
    // x[0] = -17/4: -425 saturates to -128, so b = -64. r = round(2x): x[10] = -7/4 and x[30] = 13/4
    // are ties, -3.5 -> -4 and 6.5 -> 6 (Math.round would give -3 and 7).
    expect(want.get('b')?.data[0]).toBe(-64);
    expect([want.get('r')?.data[10], want.get('r')?.data[30]]).toEqual([-4, 6]);
  });

  for (const variant of ['fused', 'unfused'] as const) {
    it(`${variant}: every output matches the interpreter`, { timeout: 300_000 }, async () => {
      const passes = variant === 'fused' ? pipelines.webgpu : unfusedPipeline('webgpu');
      const s = await createSession(dev, compilePlan(runPipeline(g, passes, createPassContext({ target: 'webgpu' })), { target: targetLimitsOf(dev) }));
      try {
        const got = (await s.run(inputs, { dims: { N: 5, M: 3 } })).outputs;
        expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
        for (const [name, w] of want) {
          const t = got.get(name);
          expect(t?.dtype, name).toBe(w.dtype);
          if (w.dtype === 'i8') expect([...(t?.data ?? [])], name).toEqual([...w.data]);
          else [...w.data].forEach((v, i) => expect(Math.abs((t?.data[i] ?? NaN) - v), `${name}[${i}]`).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(v))));
        }
      } finally {
        s.dispose();
      }
    });
  }
});
