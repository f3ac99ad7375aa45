// Packed weights (pack-weights: Llama's q/k/v and gate/up each one matmul over a weight packed at
// load) on WebGPU: the plan loads the original tensors into the packed buffers, one tensor at a
// time as tfc/runtime does (a part missing is TFC302 naming it), and a GQA Llama's prefill and a
// decode step from the GPU cache match the float64 interpreter on the source graph (1e-4), for the
// lavapipe plan (the CPU adapter's kernels) and the `--limits default` plan (the GPU's).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { checkSource } from '../../src/check/check-source.js';
import { randomInputs, randomWeights } from '../../src/cli/random.js';
import { compilePlan } from '../../src/compile/plan.js';
import type { Graph } from '../../src/graph/ir.js';
import { interpret } from '../../src/interp/interpret.js';
import { neededTensors } from '../../src/io/check-tensors.js';
import { type TargetLimits, webgpuDefaultLimits } from '../../src/kernel/schedule/schedule.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext } from '../../src/passes/pass.js';
import { pipelines } from '../../src/passes/pipeline.js';
import { RuntimeError } from '../../src/runtime/errors.js';
import { createSession } from '../../src/runtime/session.js';
import { targetLimitsOf } from '../../src/runtime/target.js';
import { relError } from '../helpers/tensors.js';
import { asTensors, cacheFrom, deviceAndSessions } from './helpers.js';

const gpu = deviceAndSessions();

function checked(overrides: Record<string, number>): Graph {
  const file = 'examples/llama.tfx';
  const r = checkSource(readFileSync(file, 'utf8'), file, new Map(Object.entries(overrides)));
  expect(r.diagnostics.map((d) => d.message)).toEqual([]);
  if (r.graph === undefined) throw new Error('no graph');
  return r.graph;
}

describe('packed weights on WebGPU (Llama, GQA 4/2 heads)', () => {
  for (const which of ['adapter', 'default'] as const) {
    it(`prefill T=7 then a decode step, ${which} limits, weights loaded one tensor at a time`, { timeout: 300_000 }, async () => {
      const g = checked({ layers: 2, d: 32, heads: 4, kv_heads: 2, ffn: 48, vocab: 64 });
      const fused = runPipeline(g, pipelines.webgpu, createPassContext({ target: 'webgpu', verify: true }));
      const limits: TargetLimits = which === 'default' ? webgpuDefaultLimits : targetLimitsOf(gpu.dev);
      const plan = compilePlan(fused, { target: limits });
      // Per layer two packed buffers (q/k/v: 32 + 16 + 16 rows; gate/up: 48 + 48), none for the parts.
      const packed = plan.buffers.filter((b) => b.parts !== undefined);
      expect(packed.map((b) => b.parts?.map((p) => p.rows))).toEqual([[32, 16, 16], [48, 48], [32, 16, 16], [48, 48]]);
      expect(plan.buffers.some((b) => b.name === 'model.layers.0.self_attn.q_proj.weight')).toBe(false);
      const session = await createSession(gpu.dev, plan);
      gpu.sessions.push(session);

      const needed = neededTensors(g);
      const prefillDims = new Map([['B', 1], ['T', 7], ['P', 0]]);
      const weights = randomWeights(needed, 31, prefillDims, []);
      const inputs = randomInputs(g, needed, 32, prefillDims, []);
      const vName = 'model.layers.1.self_attn.v_proj.weight';
      for (const [name, t] of weights) if (name !== vName) expect(session.loadWeights(new Map([[name, t]])).unused).toEqual([]);
      // One part of a packed buffer is missing: the run names it before any GPU work.
      await expect(session.run(inputs)).rejects.toSatisfy((e: unknown) => e instanceof RuntimeError && e.code === 'TFC302' && e.message.includes(vName));
      const v = weights.get(vName);
      if (v === undefined) throw new Error('no v_proj');
      session.loadWeights(new Map([[vName, v]]));

      const first = await session.run(inputs);
      const ref1 = interpret(g, { inputs, weights }).outputs;
      for (const [name, want] of ref1) expect(relError(first.outputs.get(name)?.data ?? [], want), `prefill ${name}`).toBeLessThanOrEqual(1e-4);
      const tokens = randomInputs(g, needed, 33, new Map([['B', 1], ['T', 1], ['P', 7]]), []).get('tokens');
      if (tokens === undefined) throw new Error('no tokens');
      const second = await session.run(new Map([['tokens', tokens], ...cacheFrom(asTensors(first.outputs))]));
      const ref2 = interpret(g, { inputs: new Map([['tokens', tokens], ...cacheFrom(ref1)]), weights }).outputs;
      for (const [name, want] of ref2) expect(relError(second.outputs.get(name)?.data ?? [], want), `decode ${name}`).toBeLessThanOrEqual(1e-4);
    });
  }
});
