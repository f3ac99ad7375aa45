// Attention fused in the forward graph BEFORE `grad`: the vjp of a fused_attention is one
// fused_attention_grad (src/ops/attention-vjp.ts, FlashAttention-2's backward: P recomputed from
// the forward's LSE, no T x S buffer), where differentiating the unfused chain gives matmul,
// softmax and mask ops over [B, H, T, S] tensors. Only fuse-attention runs here: the step graph
// goes through the target's whole pipeline afterwards (its fuse-attention then finds nothing new).
import { dimConstValue } from '../base/dim.js';
import type { Graph } from '../graph/ir.js';
import { isFloat } from '../graph/types.js';
import { runPipeline } from '../passes/driver.js';
import { fuseAttentionBeforeGrad } from '../passes/fuse-attention.js';
import type { PassContext } from '../passes/pass.js';

/**
 * `g` (after the cleanup passes, as fuse-attention needs) with its attention chains fused, except
 * those whose mask or score mod reads a value a float weight reaches whose shape is not constant:
 * the fused backward gives a learned table's gradient (fused_attention_grad_t) through
 * per-workgroup partial sums of a constant size, so such an attention keeps the unfused backward.
 */
export function fuseForwardAttention(g: Graph, ctx: PassContext): Graph {
  const carries = new Array<boolean>(g.nodes.length).fill(false);
  for (const n of g.nodes) {
    if (!isFloat(n.type.dtype)) continue;
    carries[n.id] = n.op === 'weight' || n.operands.some((o) => carries[o] === true);
  }
  const constant = (id: number): boolean => g.nodes[id]?.type.shape.every((d) => dimConstValue(d) !== undefined) === true;
  return runPipeline(g, [fuseAttentionBeforeGrad((id) => carries[id] === true && !constant(id))], ctx);
}
