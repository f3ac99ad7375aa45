// fuse-norm: a layernorm/rmsnorm whose every use is the A operand of a matmul (or fused_matmul)
// is folded into each of those matmuls: the tiled matmul accumulates its A rows' statistics and
// gamma/beta @ W from the tiles its K loop already stages, and normalizes at the store
// (src/kernel/matmul/norm-prologue.ts: one pass, no extra read of A), so the normalized
// activations never reach memory and the norm is no kernel of its own. With several uses
// (Llama's q/k/v projections) each matmul recomputes the statistics in registers (no traffic).
//
//   before                                                after
//   %9 = layernorm %6, %7, %8 {eps=0.00001} : f32[B,T,32] %12 = fused_matmul %6, %10, %11, %7, %8 {eps=0.00001,
//   %12 = fused_matmul %9, %10, %11 {epilogue=(i0, i1, i2)      epilogue=(i0, i1, i2) => add(acc(), read(2, i2)),
//        => add(acc(), read(2, i2))} : f32[B,T,96]             norm="layernorm"} : f32[B,T,96]
//
// The norm's gamma (and beta) become the last operands, so the epilogue's reads keep their
// numbers. Not fused, with a remark: a norm with a use that is not a matmul's A, or a graph
// output. Runs after fuse-epilogue. Needs: types inferred. Keeps: outputs, interface, types.
import type { Graph, Node } from '../graph/ir.js';
import { floatAttr } from '../graph/ir.js';
import { DefUse, rebuildGraph } from '../graph/rewrite.js';
import { countRuleHits, type GraphPass, type PassContext } from './pass.js';

const NAME = 'fuse-norm';

const isNorm = (n: Node): boolean => n.op === 'layernorm' || n.op === 'rmsnorm';

function run(g: Graph, ctx: PassContext): Graph {
  const du = new DefUse(g);
  const fused = new Set<number>();
  for (const n of g.nodes) {
    if (!isNorm(n)) continue;
    const us = du.uses(n.id);
    const bad = us.find((u) => !((u.user.op === 'matmul' || u.user.op === 'fused_matmul') && u.operand === 0 && u.user.attrs['norm'] === undefined && u.user.operands[1] !== n.id));
    const why = du.isOutput(n.id) ? 'its result is a graph output' : us.length === 0 ? 'it has no uses' : bad !== undefined ? `its use by ${bad.user.op} (operand ${bad.operand}) is not a matmul's A` : undefined;
    if (why !== undefined) {
      ctx.remark({ pass: NAME, loc: n.loc, message: `${n.op} not folded into a matmul prologue: ${why}` });
      continue;
    }
    fused.add(n.id);
  }
  if (fused.size === 0) return g;
  let count = 0;
  const out = rebuildGraph(g, (n, r) => {
    if (fused.has(n.id)) return undefined;
    const a = g.nodes[n.operands[0] ?? -1];
    if ((n.op !== 'matmul' && n.op !== 'fused_matmul') || a === undefined || !fused.has(a.id)) return r.copy(n);
    count++;
    const params = a.operands.slice(1);
    const epilogue = n.op === 'fused_matmul' ? n.attrs['epilogue'] : { kind: 'lambda' as const, params: n.type.shape.map((_, k) => `i${k}`), body: { kind: 'apply' as const, op: 'acc', args: [], dtype: n.type.dtype } };
    if (epilogue === undefined) throw new Error('internal: fused_matmul without epilogue');
    return r.b.add({
      op: 'fused_matmul',
      operands: [a.operands[0] ?? -1, ...n.operands.slice(1), ...params].map(r.mapped),
      // A paired epilogue (fuse-epilogue) keeps its `pair`.
      attrs: { ...(n.attrs['pair'] !== undefined ? { pair: n.attrs['pair'] } : {}), epilogue, norm: { kind: 'str', value: a.op }, eps: { kind: 'float', value: floatAttr(a, 'eps') } },
      type: n.type,
      loc: n.loc,
      from: [n.loc, a.loc, ...(n.from ?? [])],
      ...(n.scope !== undefined ? { scope: n.scope } : {}),
    });
  });
  countRuleHits(ctx, `${NAME}/fused_matmul`, count);
  return out;
}

export const fuseNorm: GraphPass = {
  name: NAME,
  summary: 'fold a layernorm/rmsnorm used only as matmul A operands into those matmuls as a row-statistics prologue',
  run,
};
