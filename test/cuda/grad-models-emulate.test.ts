// Issue 17's done-when on the CUDA emulator for the two models grad-emulate.test.ts (GPT-2 tiny)
// does not cover: the Llama-style example (GQA 4/2, RoPE, SwiGLU, RMSNorm) and the
// encoder-decoder (bidirectional, causal and cross attention), their cross-entropy loss and every
// weight's gradient as `tfc train` builds them (test/helpers/training.ts: P = 0, empty cache
// concats dropped), through the CUDA pipeline on the CPU emulator (cuda_emu.h under g++) against
// the float64 interpreter on the same graph (which test/oracle ties to PyTorch autograd). f32
// kernels: bar 1e-4 relative per tensor (relError, floor 1% of max|ref|). Each both `--no-fuse`
// and through the fused pipeline with the fused attention backward (attention fused before grad,
// as `tfc train` does).
import { describe, expect, it } from 'vitest';
import { compilePlan } from '../../src/compile/plan.js';
import type { Graph } from '../../src/graph/ir.js';
import { cudaLimits } from '../../src/kernel/schedule/schedule.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext } from '../../src/passes/pass.js';
import { pipelines, unfusedPipeline } from '../../src/passes/pipeline.js';
import { runPlanEmulated } from '../../src/runtime-cuda/emulate.js';
import { trainingFeeds, trainingLossGrad } from '../helpers/training.js';
import { bindDims, interpret, relError } from './helpers.js';

const llama = { vocab: 64, d: 32, heads: 4, kv_heads: 2, layers: 2, ffn: 48 };
const encdec = { vocab: 64, d: 32, heads: 4, layers: 1, ffn: 48 }; // 2 layers: 69 outputs, worst 4.7e-5, but 4 minutes of emulation under load

/** Worst relative error over the loss and every gradient; each must be within 1e-4. */
function check(g: Graph, fused: boolean, dims: Record<string, number>, what: string): void {
  const compiled = runPipeline(g, fused ? pipelines.cuda : unfusedPipeline('cuda'), createPassContext({ target: 'cuda', verify: true }));
  const plan = compilePlan(compiled, { target: cudaLimits });
  const attentionGrads = plan.steps.filter((s) => s.kernel.includes('fused_attention_grad')).length;
  // The fused pipeline differentiates through the fused attention (one backward kernel per attention); --no-fuse has none.
  expect(attentionGrads > 0, `${what}: fused_attention_grad steps`).toBe(fused);
  const { weights, inputs } = trainingFeeds(g, new Map(Object.entries(dims)), 5, 64);
  const want = interpret(g, { inputs, weights }).outputs;
  expect(want.size).toBe(g.outputs.length);
  const got = runPlanEmulated(plan, bindDims(compiled, { inputs, weights }), new Map([...inputs, ...weights].map(([k, t]) => [k, t.data]))).outputs;
  let worst = 0;
  for (const [name, ref] of want) {
    const err = relError(got.get(name) ?? [], ref);
    worst = Math.max(worst, err);
    expect(err, `${what}: ${name}`).toBeLessThanOrEqual(1e-4);
  }
  console.log(`${what} (${fused ? 'fused' : 'unfused'}): ${want.size} outputs on the CUDA emulator, ${plan.steps.length} launches, ${attentionGrads} fused attention backward, worst rel error ${worst.toExponential(2)}`);
}

describe('grad of the Llama-style example and the encoder-decoder on the CUDA emulator vs the float64 interpreter', () => {
  it('Llama-style (GQA 4/2, RoPE, SwiGLU), B=2, T=7, --no-fuse', { timeout: 1_800_000 }, () => {
    check(trainingLossGrad('examples/llama.tfx', false, llama), false, { B: 2, T: 7 }, 'llama');
  });
  it('Llama-style, B=2, T=7, fused pipeline with the fused attention backward', { timeout: 1_800_000 }, () => {
    check(trainingLossGrad('examples/llama.tfx', true, llama), true, { B: 2, T: 7 }, 'llama');
  });
  it('encoder-decoder, B=2, S=5, T=4, --no-fuse', { timeout: 1_800_000 }, () => {
    check(trainingLossGrad('examples/transformer.tfx', false, encdec), false, { B: 2, S: 5, T: 4 }, 'encoder-decoder');
  });
  it('encoder-decoder, B=2, S=5, T=4, fused pipeline with the fused attention backward (bidirectional, causal, cross)', { timeout: 1_800_000 }, () => {
    check(trainingLossGrad('examples/transformer.tfx', true, encdec), true, { B: 2, S: 5, T: 4 }, 'encoder-decoder');
  });
});
