// Attention fused in the forward graph BEFORE `grad`: the vjp of a fused_attention is one
// fused_attention_grad (src/ops/attention-vjp.ts, FlashAttention-2's backward: P recomputed from
// the forward's LSE, no T x S buffer), where differentiating the unfused chain gives matmul,
// softmax and mask ops over [B, H, T, S] tensors. Only fuse-attention runs here: the step graph
// goes through the target's whole pipeline afterwards (its fuse-attention then finds nothing new).
import type { Graph } from '../graph/ir.js';
import { isFloat } from '../graph/types.js';
import { runPipeline } from '../passes/driver.js';
import { fuseAttentionBeforeGrad } from '../passes/fuse-attention.js';
import type { PassContext } from '../passes/pass.js';

/**
 * `g` (after the cleanup passes, as fuse-attention needs) with its attention chains fused, except
 * those whose mask or score mod reads a value a float weight reaches (a learned bias table: the
 * fused backward has no gradient for it, so that attention keeps the unfused backward).
 */
export function fuseForwardAttention(g: Graph, ctx: PassContext): Graph {
  const carries = new Array<boolean>(g.nodes.length).fill(false);
  for (const n of g.nodes) {
    if (!isFloat(n.type.dtype)) continue;
    carries[n.id] = n.op === 'weight' || n.operands.some((o) => carries[o] === true);
  }
  return runPipeline(g, [fuseAttentionBeforeGrad((id) => carries[id] === true)], ctx);
}
