// The KV cache written by the attention kernel (src/passes/fuse-cache-write.ts) through the CUDA
// backend on the CPU emulator: gpt2-kv.tfx (contiguous cache) and llama.tfx (GQA: one query head
// per KV head writes; RoPE in the new row's K load; its V keeps its write kernel) prefill 40 tokens, then decode 2 steps, each
// step fed the previous step's present (the emulator's and, separately, the interpreter's); the
// logits and every present within 1e-4 of the float64 interpreter on the unfused graph (gpt2-kv also
// with a sliding window, below). 41+ keys
// span two 32-key partitions of the split-K kernel, so two partitions write.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { Tensor64 } from '../../src/base/tensor.js';
import { compilePlan } from '../../src/compile/plan.js';
import { cudaLimits } from '../../src/kernel/schedule/schedule.js';
import { dispatchedSteps } from '../../src/kernel/plan/plan.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext } from '../../src/passes/pass.js';
import { pipelines } from '../../src/passes/pipeline.js';
import { runPlanEmulated } from '../../src/runtime-cuda/emulate.js';
import { bindDims, feedsFor, graphOf, interpret, relError } from './helpers.js';

const PROMPT = 40;
// A sliding window of 8 (edited into gpt2-kv's mask): at P = 40..41 it sees keys 33..41, so the
// first 32-key tile is skipped by every decode query while its partition still writes its rows.
const windowed = (t: string): string => t.replace('causal = grid[T, P + T](qi, ki) => ki <= qi + P', 'causal = grid[T, P + T](qi, ki) => ki <= qi + P && qi + P - ki < 8');
const cases = [
  // maps: the decode step's fused_map kernels (gpt2: the embedding; Llama: its V write, which
  // stays a kernel: with K's new row, cos and sin the split kernel already binds 8 buffers).
  { name: 'gpt2-kv', file: 'examples/variants/gpt2-kv.tfx', edit: (t: string) => t, overrides: { vocab: 64, ctx: 64, d: 32, heads: 2, layers: 1 }, kvHeads: 2, dh: 16, results: 2, maps: ['gpt2_kv_fused_map'] },
  { name: 'gpt2-kv, window 8', file: 'examples/variants/gpt2-kv.tfx', edit: windowed, overrides: { vocab: 64, ctx: 64, d: 32, heads: 2, layers: 1 }, kvHeads: 2, dh: 16, results: 2, maps: ['gpt2_kv_fused_map'] },
  { name: 'llama', file: 'examples/llama.tfx', edit: (t: string) => t, overrides: { vocab: 64, d: 32, heads: 4, kv_heads: 2, layers: 1, ffn: 48 }, kvHeads: 2, dh: 8, results: 1, maps: ['rope_angles_fused_map', 'llama_l0_fused_map'] },
];

describe('the attention kernel writes the KV cache (CUDA emulator vs float64)', () => {
  for (const m of cases) {
    it(`${m.name}: prefill ${PROMPT} then 2 decode steps`, () => {
      const text = readFileSync(m.file, 'utf8');
      if (m.name.includes('window')) expect(m.edit(text)).not.toBe(text); // the mask edit took
      const source = graphOf(m.edit(text), m.file, new Map(Object.entries(m.overrides)));
      const g = runPipeline(source, pipelines.cuda, createPassContext({ target: 'cuda' }));
      expect(g.nodes.filter((n) => n.op === 'fused_attention_k' || n.op === 'fused_attention_v')).toHaveLength(m.results);
      const plan = compilePlan(g, { target: cudaLimits });
      // The decode step has no cache-write kernel: the attention's kernels are split + combine.
      const decode = dispatchedSteps(
        plan,
        new Map([
          ['B', 1],
          ['T', 1],
          ['P', PROMPT],
        ]),
      ).map((s) => s.kernel);
      expect(decode.filter((k) => k.includes('fused_attention'))).toEqual(['attention_l0_fused_attention_split', 'attention_l0_fused_attention_combine']);
      expect(decode.filter((k) => /fused_map|slice|concat/.test(k))).toEqual(m.maps);
      const { weights } = feedsFor(
        source,
        new Map([
          ['B', 1],
          ['T', PROMPT],
          ['P', 0],
        ]),
        3,
        0.5,
      );
      const empty: Tensor64 = {
        dtype: 'f32',
        shape: [1, m.kvHeads, 0, m.dh],
        data: new Float64Array(0),
      };
      let pastEmu = new Map<string, Tensor64>([
        ['past.0.key', empty],
        ['past.0.value', empty],
      ]);
      let pastRef = pastEmu;
      for (let step = 0; step < 3; step++) {
        const n = step === 0 ? PROMPT : 1;
        const tokens: Tensor64 = {
          dtype: 'i32',
          shape: [1, n],
          data: Float64Array.from({ length: n }, (_, i) => (i * 29 + step * 7) % 64),
        };
        const ref = interpret(source, {
          inputs: new Map([['tokens', tokens], ...pastRef]),
          weights,
        });
        const inputs = new Map([['tokens', tokens], ...pastEmu]);
        const dims = bindDims(g, { inputs, weights });
        const r = runPlanEmulated(plan, dims, new Map([...inputs, ...weights].map(([k, t]) => [k, t.data])));
        for (const [name, want] of ref.outputs) expect(relError(r.outputs.get(name) ?? [], want), `step ${step} ${name}`).toBeLessThan(1e-4);
        const present = (kv: string, data: ArrayLike<number>, like: Tensor64): Tensor64 => ({
          dtype: 'f32',
          shape: [...like.shape],
          data: Float64Array.from(data),
        });
        pastEmu = new Map(['key', 'value'].map((kv) => [`past.0.${kv}`, present(kv, r.outputs.get(`present.0.${kv}`) ?? [], ref.outputs.get(`present.0.${kv}`) as Tensor64)]));
        pastRef = new Map(['key', 'value'].map((kv) => [`past.0.${kv}`, ref.outputs.get(`present.0.${kv}`) as Tensor64]));
      }
    }, 600_000);
  }
});
