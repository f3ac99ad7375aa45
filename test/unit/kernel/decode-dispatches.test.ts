// Dispatches of one decode step (T = 1 after a prompt) per model, from the plan: the counts
// docs/performance.md ("Decode dispatches") derives kernel by kernel, so a fusion or schedule
// change that adds a kernel to a decode step fails here. Counts only, never times. The runtime
// dispatches exactly these steps (test/webgpu/decode-dispatches.test.ts compares
// `stats.lastDispatches` with dispatchedSteps on lavapipe).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { benchPlan, repoRoot } from '../../../src/cli/bench.js';
import { dispatchedSteps } from '../../../src/kernel/plan/plan.js';
import { type TargetLimits, lavapipeLimits, webgpuDefaultLimits } from '../../../src/kernel/schedule/schedule.js';

const gpt2Tiny = { d: 128, heads: 4, vocab: 512, ctx: 256 };
const llamaTiny = { vocab: 512, d: 128, heads: 4, kv_heads: 2, ffn: 256, ctx: 256 };

/** Steps a decode step (B = 1, T = 1, P = 20) dispatches with `layers` layers, and their kernel names. */
function decodeStep(file: string, set: Readonly<Record<string, number>>, layers: number, limits: TargetLimits): string[] {
  const path = join(repoRoot, file);
  const plan = benchPlan(readFileSync(path, 'utf8'), path, new Map(Object.entries({ ...set, layers })), true, limits);
  // P for a contiguous cache; NP, MP (pages in the pool, per sequence) for the paged one.
  return dispatchedSteps(plan, new Map([['B', 1], ['T', 1], ['P', 20], ['NP', 8], ['MP', 4]])).map((s) => s.kernel);
}

// [file, config, limits, dispatches outside the layers, per layer] (docs/performance.md).
const cases: readonly [string, Readonly<Record<string, number>>, TargetLimits, number, number][] = [
  // embedding, ln_f + LM head; per layer: ln_1, qkv, qkv sum, attention split (writing the K and
  // V cache: fuse-cache-write) + combine, proj, proj sum, ln_2, fc, fc sum, proj, proj sum (the
  // CPU adapter's split-K GEMVs: partials + sum). The norms are kernels of their own on lavapipe
  // (decodeNormFold 'separate': measured, the inline fold made c_fc and the LM head ~1.7x slower,
  // docs/performance.md).
  ['examples/variants/gpt2-kv.tfx', gpt2Tiny, lavapipeLimits, 3, 12],
  // per layer: qkv, attention split (writing the cache) + combine, proj, fc, proj.
  ['examples/variants/gpt2-kv.tfx', gpt2Tiny, webgpuDefaultLimits, 2, 6],
  // Paged: embedding, the scatter offsets (one grid for every layer: CSE), ln_f + LM head; per
  // layer as gpt2-kv but the cache written in place by one scatter per K and V (the new rows read
  // out of the qkv output through a view) instead of by the attention (fuse-cache-write does not
  // apply: the attention reads the pool through its table, not the scattered pool).
  ['examples/variants/gpt2-paged.tfx', gpt2Tiny, lavapipeLimits, 4, 14],
  ['examples/variants/gpt2-paged.tfx', gpt2Tiny, webgpuDefaultLimits, 3, 8],
  // + per K and V: the scale (fuse-reduce: |x|, row max, max(m / 127, qmin) in one kernel), its
  // write and the quantized values' write (the attention's load dequantizes the stored cache,
  // so fuse-cache-write does not apply: the f32 model's split writes nothing here).
  ['examples/variants/gpt2-kv-int8.tfx', gpt2Tiny, lavapipeLimits, 3, 18],
  ['examples/variants/gpt2-kv-int8.tfx', gpt2Tiny, webgpuDefaultLimits, 2, 12],
  // RoPE angles, cos, sin, embedding + LM head; per layer: q/k/v (one matmul over the packed
  // weight, pack-weights), V write, attention split (writing the K cache, RoPE on the new key in
  // its K load; V too would make the kernel bind more than WebGPU's 8 storage buffers) + combine,
  // o, gate/up with silu(gate) * up in the same kernel (a paired epilogue, pairFold 'inline'),
  // down (+ the final and the two per-layer rmsnorms on lavapipe, as above). Before pack-weights
  // and fuse-cache-write: 13 and 11 (q, k, v and gate, up each a matmul; K write a kernel).
  ['examples/llama.tfx', llamaTiny, lavapipeLimits, 6, 9],
  ['examples/llama.tfx', llamaTiny, webgpuDefaultLimits, 5, 7],
];

describe('dispatches per decode step', () => {
  for (const [file, set, limits, outside, perLayer] of cases) {
    it(`${file} (${limits.name}): ${outside} + ${perLayer} per layer, norms ${limits === lavapipeLimits ? 'as kernels' : 'folded'}`, () => {
      const one = decodeStep(file, set, 1, limits);
      const two = decodeStep(file, set, 2, limits);
      expect(two.length - one.length).toBe(perLayer);
      expect(one.length - perLayer).toBe(outside);
      // Default limits: the norms are folded into the GEMVs that read them; lavapipe: one norm
      // kernel per norm (decodeNormFold 'separate').
      expect(two.filter((k) => /norm/.test(k)).length).toBe(limits === lavapipeLimits ? 2 * 2 + 1 : 0);
    });
  }

  it('GPT-2 small on lavapipe: 150 (125 with the norms folded inline, which measured slower)', () => {
    // 12 layers of 12, the embedding, ln_f, the LM head in 4 row chunks of wte (over the 128 MiB
    // binding) and the concat of their logits.
    expect(decodeStep('examples/variants/gpt2-kv.tfx', {}, 12, lavapipeLimits)).toHaveLength(6 + 12 * 12);
  });
});
