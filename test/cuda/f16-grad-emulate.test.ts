// A whole training graph in f16 on the CUDA emulator: GPT-2 (1 layer, d 128, 2 heads of 64)
// `--grad --dtype f16` for the CUDA target, whose attention backward takes the tensor-core kernel
// (kernel/attention/mma-backward.ts; asserted on the plan), against the float64 interpreter on
// the f32 backward graph with the same f32 data. The error therefore includes narrowing the
// weights, inputs and every stored activation and gradient to f16 (2^-11 each) through the
// forward and backward of a layer, the LSE stored in f16 included; measured as
// max |got - want| / max |want| per output (maxRelToScale). Bar 2e-2, the bar for a whole
// model in reduced precision (f16-models-emulate.test.ts); measured values are printed.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { compileModel } from '../../src/compile/model.js';
import { compilePlan } from '../../src/compile/plan.js';
import { cudaLimits } from '../../src/kernel/schedule/schedule.js';
import { runPlanEmulated } from '../../src/runtime-cuda/emulate.js';
import { maxRelToScale, tensorFor } from '../helpers/tensors.js';
import { bindDims, feedsFor, interpret } from './helpers.js';

describe('an f16 training graph with the tensor-core attention backward on the CUDA emulator', () => {
  it('GPT-2 1 layer, d 128, --grad --dtype f16, B=1, T=33: loss and every gradient vs float64', () => {
    const file = 'examples/gpt2.tfx';
    const text = readFileSync(file, 'utf8');
    const overrides = new Map(Object.entries({ vocab: 64, ctx: 64, d: 128, heads: 2, layers: 1 }));
    const half = compileModel({ file, text }, { overrides, target: 'cuda', dtype: 'f16', grad: true });
    const source = compileModel({ file, text }, { overrides, target: 'interp', grad: true }).checked;
    const plan = compilePlan(half.graph, { target: cudaLimits });
    const grads = plan.kernels.filter((k) => k.name.includes('fused_attention_grad'));
    expect(grads.length).toBe(1);
    expect(grads[0]?.source.cuda ?? '').toContain('tfc_mma_regs_f16(');
    const dims = new Map([['B', 1], ['T', 33]]);
    const { weights } = feedsFor(source, dims, 3, 0.5);
    const inputs = new Map([['tokens', tensorFor('i32', [1, 33], 4, 64)], ['targets', tensorFor('i32', [1, 33], 5, 64)]]);
    const want = interpret(source, { inputs, weights }).outputs;
    const r = runPlanEmulated(plan, bindDims(source, { inputs, weights }), new Map([...inputs, ...weights].map(([k, t]) => [k, t.data])));
    expect(want.size).toBe(1 + 4 + 12);
    let worst = 0;
    for (const [name, w] of want) {
      const e = maxRelToScale(r.outputs.get(name) ?? [], w);
      worst = Math.max(worst, e);
      expect(e, name).toBeLessThanOrEqual(2e-2);
    }
    console.log(`gpt2 --grad --dtype f16 on the CUDA emulator: ${want.size} outputs, worst max|diff|/max|want| ${worst.toExponential(2)}`);
  }, 900_000);
});
