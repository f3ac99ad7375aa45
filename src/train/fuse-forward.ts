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
 * The largest learned table the fused backward sums (attention/backward-table.ts: each thread
 * scans a Br x Bc tile per owned entry, and the partial rows are [key tiles x Hkv x B, entries]).
 * A tensor read like a table but sized by bound B and T (a per-token gate [B, T, H] when `tfc
 * train` binds the dims) would make those rows grow like T x S: such an attention stays unfused.
 */
export const MAX_TABLE_ENTRIES = 8192;

/**
 * `g` (after the cleanup passes, as fuse-attention needs) with its attention chains fused, except
 * those whose mask or score mod reads a value a float weight reaches whose shape is not constant
 * or that has more than MAX_TABLE_ENTRIES elements: the fused backward gives a learned table's
 * gradient (fused_attention_grad_t) through per-workgroup partial sums of a constant, small
 * size, so such an attention keeps the unfused backward.
 */
export function fuseForwardAttention(g: Graph, ctx: PassContext): Graph {
  const carries = new Array<boolean>(g.nodes.length).fill(false);
  for (const n of g.nodes) {
    if (!isFloat(n.type.dtype)) continue;
    carries[n.id] = n.op === 'weight' || n.operands.some((o) => carries[o] === true);
  }
  const small = (id: number): boolean => {
    const dims = g.nodes[id]?.type.shape.map(dimConstValue) ?? [undefined];
    return dims.every((d) => d !== undefined) && dims.reduce<number>((a, d) => a * (d ?? 0), 1) <= MAX_TABLE_ENTRIES;
  };
  return runPipeline(g, [fuseAttentionBeforeGrad((id) => carries[id] === true && !small(id))], ctx);
}
