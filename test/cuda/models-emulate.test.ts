// Whole models through the CUDA backend on the CPU emulator vs the float64 interpreter: GPT-2
// (2 layers, d=32) prefill, GPT-2 with a KV cache in prefill (T > 1) and decode (T = 1: the
// split-K attention path of the plan's `when` steps), and Llama (GQA, KV cache), each with the
// CUDA pipeline's fusion and without (--no-fuse); Llama without a cache (RoPE in the Q and K loads). Every step of each plan runs in order.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { Graph } from '../../src/graph/ir.js';
import { compilePlan } from '../../src/compile/plan.js';
import { cudaLimits } from '../../src/kernel/schedule/schedule.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext } from '../../src/passes/pass.js';
import { pipelines, unfusedPipeline } from '../../src/passes/pipeline.js';
import { runPlanEmulated } from '../../src/runtime-cuda/emulate.js';
import { bindDims, feedsFor, graphOf, interpret, relError } from './helpers.js';

interface ModelCase {
  readonly file: string;
  readonly overrides: Record<string, number>;
  readonly runs: readonly Record<string, number>[]; // dims per run
}

const models: readonly ModelCase[] = [
  { file: 'examples/gpt2.tfx', overrides: { vocab: 64, ctx: 16, d: 32, heads: 2, layers: 2 }, runs: [{ B: 1, T: 7 }, { B: 2, T: 1 }] },
  { file: 'examples/variants/gpt2-kv.tfx', overrides: { vocab: 64, ctx: 16, d: 32, heads: 2, layers: 1 }, runs: [{ B: 1, T: 3, P: 4 }, { B: 1, T: 1, P: 6 }] },
  { file: 'examples/llama.tfx', overrides: { vocab: 64, d: 32, heads: 4, kv_heads: 2, layers: 1, ffn: 48 }, runs: [{ B: 1, T: 5, P: 2 }, { B: 1, T: 1, P: 9 }] },
  // A score modifier reading the score several times (m = where(s > cap, ...); m * sigmoid(m)): one fused attention.
  { file: 'examples/variants/score-mods.tfx', overrides: { vocab: 64, ctx: 16, d: 32, heads: 2, layers: 1 }, runs: [{ B: 1, T: 7 }, { B: 2, T: 1 }] },
  // Local (sliding window) and global layers chosen by `where` on the layer index: one mask per layer.
  { file: 'examples/variants/local-global.tfx', overrides: { vocab: 64, ctx: 16, d: 32, heads: 2, layers: 2, window: 3 }, runs: [{ B: 1, T: 9 }, { B: 2, T: 1 }] },
  // gpt-oss sinks: softmax(s) @ v gated by sigmoid(lse - sink); the LSE comes from the attention kernel.
  { file: 'examples/variants/sinks.tfx', overrides: { vocab: 64, ctx: 16, d: 32, heads: 2, layers: 1 }, runs: [{ B: 1, T: 7 }, { B: 2, T: 1 }] },
  // StreamingLLM: sink keys plus a sliding window in one mask.
  { file: 'examples/variants/streaming.tfx', overrides: { vocab: 64, ctx: 16, d: 32, heads: 2, layers: 1, window: 3, sink_tokens: 2 }, runs: [{ B: 1, T: 11 }] },
  // Continuous batching: per-row cache lengths read by the mask, the positions and the cache write.
  { file: 'examples/variants/gpt2-batched.tfx', overrides: { vocab: 64, ctx: 16, d: 32, heads: 2, layers: 1 }, runs: [{ B: 2, T: 1, S: 6 }, { B: 1, T: 3, S: 8 }] },
  // No KV cache: rope(q) and rope(k) computed in the attention's Q and K loads (qload / kload).
  { file: 'examples/variants/llama-nocache.tfx', overrides: { vocab: 64, d: 32, heads: 4, kv_heads: 2, layers: 1, ffn: 48 }, runs: [{ B: 1, T: 9 }, { B: 2, T: 1 }] },
];

describe('models on the CUDA CPU emulator vs the float64 interpreter', () => {
  for (const m of models) {
    for (const variant of ['fused', 'unfused'] as const) {
      it(`${m.file} (${variant})`, () => {
        const source: Graph = graphOf(readFileSync(m.file, 'utf8'), m.file, new Map(Object.entries(m.overrides)));
        const passes = variant === 'fused' ? pipelines.cuda : unfusedPipeline('cuda');
        const g = runPipeline(source, passes, createPassContext({ target: 'cuda' }));
        if (variant === 'fused' && m.file.endsWith('score-mods.tfx')) expect(g.nodes.filter((n) => n.op === 'fused_attention' && n.attrs['score'] !== undefined).length).toBe(1);
        if (variant === 'fused' && m.file.endsWith('llama-nocache.tfx')) expect(g.nodes.filter((n) => n.op === 'fused_attention' && n.attrs['kload'] !== undefined).length).toBe(1);
        const plan = compilePlan(g, { target: cudaLimits });
        for (const run of m.runs) {
          const { inputs, weights } = feedsFor(source, new Map(Object.entries(run)), 3, 0.5);
          const ref = interpret(source, { inputs, weights }); // the unfused source graph: op by op
          const dims = bindDims(g, { inputs, weights });
          const feeds = new Map([...inputs, ...weights].map(([k, t]) => [k, t.data]));
          const r = runPlanEmulated(plan, dims, feeds);
          for (const [name, want] of ref.outputs) {
            // f32 kernels vs float64, 1e-4 relative (floor at 1e-2 of the tensor's scale, see relError).
            expect(relError(r.outputs.get(name) ?? [], want), `${name} with ${JSON.stringify(run)}`).toBeLessThan(1e-4);
          }
        }
      }, 600_000);
    }
  }
});
