// fuse-cache-write: a KV cache's present = concat(past, new) (a fused_map that is a graph output)
// read as a fused_attention's k or v is computed in the attention's K / V load (as
// fuse-attention-loads does for a map with no other use) and the attention writes it as its
// second result `fused_attention_k` / `fused_attention_v`: no K or V write kernel of its own.
//
//   before                                                  after
//   %13 = fused_map %1, %12 {body=(i0, i1, i2, i3) =>        %16 = fused_attention %11, %1, %15, %12 {kload=(b, h, s, d) =>
//         where(lt(i2, dim(P)), read(0, ...), read(1, ...))}        where(lt(s, dim(P)), read(1, ...), read(3, ...)), kshape=...}
//   %16 = fused_attention %11, %13, %15 {...}                 %17 = fused_attention_k %16 : f32[B,4,P+T,32]
//   output "present.0.key" = %13                             output "present.0.key" = %17
//
// The lowering (kernel/attention/attention.ts) writes the result from the split-K decode kernel
// (each partition writes the rows of its cache range, one query head per KV head) and, for the
// prefill path, from a map kernel of the load lambda; the AttentionSchedule field `writesCache`
// false makes it that map kernel on every path (the switch). Not applied, with a remark: a map
// with uses besides the attention and the output. Leaving this pass out of the pipeline gives
// the graph without it (present written by its own kernel, the attention reading it).
// Runs right after fuse-attention-loads. Needs: types inferred. Keeps: outputs, interface, types.
import type { Graph } from '../graph/ir.js';
import { foldAttentionLoads } from './fuse-attention-loads.js';
import type { GraphPass, PassContext } from './pass.js';

const NAME = 'fuse-cache-write';

export const fuseCacheWrite: GraphPass = {
  name: NAME,
  summary: "compute a KV cache's present (a fused_map output read as attention's k or v) in the attention's load and write it from the attention kernel (fused_attention_k / _v)",
  run: (g: Graph, ctx: PassContext) => foldAttentionLoads(g, ctx, 'cache', NAME),
};
