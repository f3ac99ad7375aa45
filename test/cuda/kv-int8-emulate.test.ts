// The int8 KV cache (examples/variants/gpt2-kv-int8.tfx) through the CUDA backend on the CPU
// emulator against PyTorch (test/oracle/kv_int8_oracle.py): prefill T=8 then two decode steps,
// each fed the previous step's present (i8 values through the launcher's I8 files, scales f32);
// logits and scales within 1e-4 (max |tfc - torch| / max |torch|), the i8 values exactly equal.
// As on WebGPU (test/webgpu/kv-int8.test.ts) the oracle picks a seed whose every x / s lies at
// least 5e-4 from a rounding boundary, so f32 rounds each element as float64 does. The attention
// stays one fused kernel whose CUDA source reads the `signed char` caches itself.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { checkSource } from '../../src/check/check-source.js';
import { compilePlan } from '../../src/compile/plan.js';
import type { Tensor64 } from '../../src/base/tensor.js';
import { cudaLimits } from '../../src/kernel/schedule/schedule.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext } from '../../src/passes/pass.js';
import { pipelines } from '../../src/passes/pipeline.js';
import { runPlanEmulated } from '../../src/runtime-cuda/emulate.js';
import { readOracle, relError, runOracle, torchMissingReason } from '../oracle/oracle.js';
import { bindDims } from './helpers.js';

const noTorch = torchMissingReason() !== undefined;
const file = 'examples/variants/gpt2-kv-int8.tfx';

describe('int8 KV cache on the CUDA emulator', () => {
  it.skipIf(noTorch)('matches PyTorch: prefill T=8 then 2 decode steps (logits and scales 1e-4, i8 values exact)', () => {
    const dir = runOracle('kv_int8_oracle.py', ['--seed', '0', '--min-margin', '5e-4', '--layers', '2', '--d', '64', '--heads', '4', '--vocab', '256', '--ctx', '64', '--batch', '2', '--seq', '8', '--steps', '2']);
    const r = checkSource(readFileSync(file, 'utf8'), file, new Map(Object.entries({ layers: 2, d: 64, heads: 4, vocab: 256, ctx: 64 })));
    if (r.graph === undefined) throw new Error(r.diagnostics.map((d) => d.message).join('; '));
    const g = runPipeline(r.graph, pipelines.cuda, createPassContext({ target: 'cuda' }));
    expect(g.nodes.filter((n) => n.op === 'fused_attention' && n.attrs['kload'] !== undefined && n.attrs['vload'] !== undefined)).toHaveLength(2);
    const plan = compilePlan(g, { target: cudaLimits });
    const attn = plan.kernels.filter((k) => k.name.includes('fused_attention') && !k.name.includes('combine'));
    expect(attn.length).toBeGreaterThan(0);
    for (const k of attn) expect(k.source.cuda).toMatch(/const signed char\* __restrict__/);
    const prefill = readOracle(dir);
    let inputs = new Map<string, Tensor64>(prefill.inputs);
    for (let i = 0; i < 3; i++) {
      const step = i === 0 ? prefill : readOracle(dir, `decode${i - 1}_`);
      if (i > 0) inputs.set('tokens', step.inputs.get('tokens') as Tensor64);
      const dims = bindDims(g, { inputs, weights: prefill.weights });
      expect(Object.fromEntries(dims)).toMatchObject({ B: 2, T: i === 0 ? 8 : 1, P: i === 0 ? 0 : 7 + i });
      const feeds = new Map([...inputs, ...prefill.weights].map(([k, t]) => [k, t.data]));
      const out = runPlanEmulated(plan, dims, feeds).outputs;
      const next = new Map<string, Tensor64>([['tokens', inputs.get('tokens') as Tensor64]]);
      for (const [name, want] of step.expected) {
        const data = out.get(name);
        if (data === undefined) throw new Error(`no output ${name}`);
        const got: Tensor64 = { dtype: want.dtype, shape: want.shape, data: Float64Array.from(data) };
        const err = relError(got, want);
        console.log(`gpt2-kv-int8 (CUDA emulator) step ${i} ${name}: max rel error ${err.toExponential(2)}`);
        const isValues = name.endsWith('.key') || name.endsWith('.value');
        if (isValues) expect(err, `step ${i} ${name}: i8 values`).toBe(0);
        else expect(err, `step ${i} ${name}`).toBeLessThanOrEqual(1e-4);
        if (name.startsWith('present.')) next.set(`past.${name.slice('present.'.length)}`, { ...got, dtype: isValues ? 'i8' : 'f32' });
      }
      inputs = next;
    }
  }, 600_000);
});
