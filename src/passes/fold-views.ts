// fold-views: chains of movement ops (slice, reshape, permute) whose every consumer can read an
// operand through an index map become one `view` node of the chain's source. A view lowers to
// no kernel: the consumer (a matmul's A or B tiles, fused_attention's q/k/v tiles and its load
// lambdas' operands, fused_map and epilogue reads, scatter's values) computes the address in the
// source buffer from the view's map
// (src/kernel/lower/view.ts). This is how attention reads Q, K, V per head straight out of the
// QKV projection's output and the output projection reads O through the merge-heads permute.
//
//   before                                               after
//   %12 = fused_matmul %9, %10, %11 {...} : f32[B,T,96]  %12 = fused_matmul %9, %10, %11 {...} : f32[B,T,96]
//   %13 = slice %12 {axis=2, end=dim(32), start=dim(0)}  %13 = view %12 {map=(i0, i1, i2, i3) =>
//   %16 = reshape %13 {shape=dims[B,T,4,8]}                    read(0, i0, i2, add(mul(i1, 8), i3)),
//   %17 = permute %16 {perm=[0,2,1,3]} : f32[B,4,T,8]          shape=dims[B,4,T,8]} : f32[B,4,T,8]
//   %22 = fused_attention %17, ...                       %22 = fused_attention %13, ...
//
// A chain is folded only when every use of every node in it is a view reader (or another node of
// the chain) and none is a graph output; otherwise the movement stays a kernel (or, for reshape,
// the plain lowering's buffer alias). Maps compose, so a view always reads a non-movement value.
// Runs last among the graph passes (after fusion made the readers). Needs: types inferred.
// Keeps: outputs, interface, types.
import { dimConst, dimConstValue, dimEquals, dimMul } from '../base/dim.js';
import type { Dim } from '../base/dim.js';
import type { Graph, Node, ScalarExpr } from '../graph/ir.js';
import { dimAttr, intAttr, intsAttr, lambdaAttr } from '../graph/ir.js';
import { DefUse, rebuildGraph } from '../graph/rewrite.js';
import { dimValue, i32, idx, indexOp, someScalarExpr, substituteIndex } from '../graph/lambda.js';
import { countRuleHits, type GraphPass, type PassContext } from './pass.js';

const NAME = 'fold-views';

const movementOps: ReadonlySet<string> = new Set(['slice', 'reshape', 'permute', 'view']);

/** Whether lambda attribute `key` of `n` reads operand position `k`. */
function readsOperand(n: Node, key: string, k: number): boolean {
  const a = n.attrs[key];
  return a?.kind === 'lambda' && someScalarExpr(a.body, (e) => e.kind === 'read' && e.operand === k);
}

/** Whether `user` can read operand position `k` through an index map. */
function readsViews(user: Node, k: number): boolean {
  switch (user.op) {
    case 'matmul':
      return k <= 1;
    case 'fused_matmul':
      // Not the norm prologue's A (its row statistics read A rows contiguously).
      return k <= 1 ? !(k === 0 && user.attrs['norm'] !== undefined) : true;
    case 'fused_attention':
      // q, k, v; and an extra operand read only by the Q/K/V load lambdas (a KV cache's new
      // rows, fuse-cache-write): every kernel reads those through lambdaExpr, which addresses a
      // view. The mask and score lambdas' reads stay plain buffers (the host tile counter,
      // attention/count.ts, indexes them row-major).
      return k <= 2 || !['mask', 'score'].some((key) => readsOperand(user, key, k));
    case 'fused_map':
    case 'fused_reduce':
      return true;
    case 'scatter':
      return k === 2; // the values (lower/scatter.ts reads them through the map)
    default:
      return false;
  }
}


/**
 * Source indices of a reshape from `from` to `to` at the result index `at`: axes are grouped
 * where the running products agree, and only within a group is the flat offset split again,
 * so splitting [B,T,d] into [B,T,h,dh] costs one multiply-add, merging one div and one mod.
 */
function reshapeIndices(from: readonly Dim[], to: readonly Dim[], at: readonly ScalarExpr[]): ScalarExpr[] | undefined {
  const out: ScalarExpr[] = [];
  let i = 0;
  let j = 0;
  while (i < from.length || j < to.length) {
    // One group: the fewest axes of each side with equal products (size-1 axes join the next group).
    let pf: Dim = dimConst(1);
    let pt: Dim = dimConst(1);
    const gi = i;
    const gj = j;
    if (i < from.length) pf = dimMul(pf, from[i++] ?? dimConst(1));
    if (j < to.length) pt = dimMul(pt, to[j++] ?? dimConst(1));
    while (!dimEquals(pf, pt)) {
      const cf = dimConstValue(pf);
      const ct = dimConstValue(pt);
      if (j < to.length && (i >= from.length || (cf !== undefined && ct !== undefined && ct < cf) || (cf === undefined && ct !== undefined))) pt = dimMul(pt, to[j++] ?? dimConst(1));
      else if (i < from.length) pf = dimMul(pf, from[i++] ?? dimConst(1));
      else return undefined;
    }
    // Trailing size-1 axes of the group on either side.
    while (i < from.length && dimConstValue(from[i] ?? dimConst(0)) === 1 && !(j < to.length && dimConstValue(to[j] ?? dimConst(0)) === 1)) i++;
    while (j < to.length && dimConstValue(to[j] ?? dimConst(0)) === 1 && !(i < from.length && dimConstValue(from[i] ?? dimConst(0)) === 1)) j++;
    // Flat offset within the group (result side), then split over the source axes.
    let flat: ScalarExpr = i32(0);
    for (let k = gj; k < j; k++) flat = indexOp('add', indexOp('mul', flat, dimValue(to[k] ?? dimConst(1))), at[k] ?? i32(0));
    let stride: Dim = dimConst(1);
    const group: ScalarExpr[] = [];
    for (let k = i - 1; k >= gi; k--) {
      const d = from[k] ?? dimConst(1);
      const q = indexOp('div', flat, dimValue(stride));
      group.unshift(k === gi ? q : indexOp('mod', q, dimValue(d)));
      stride = dimMul(stride, d);
    }
    out.push(...group);
  }
  return out.length === from.length ? out : undefined;
}

/** Operand-0 indices of movement node `n` at its result index `at`, or undefined when not expressible. */
function sourceIndices(n: Node, source: Node, at: readonly ScalarExpr[]): ScalarExpr[] | undefined {
  switch (n.op) {
    case 'permute': {
      const perm = intsAttr(n, 'perm');
      const inAt: ScalarExpr[] = new Array<ScalarExpr>(perm.length);
      perm.forEach((p, i) => (inAt[p] = at[i] ?? i32(0)));
      return inAt;
    }
    case 'slice': {
      const axis = intAttr(n, 'axis');
      const start = dimAttr(n, 'start');
      return at.map((x, k) => (k === axis ? indexOp('add', x, dimValue(start)) : x));
    }
    case 'reshape':
      return reshapeIndices(source.type.shape, n.type.shape, at);
    case 'view': {
      const body = lambdaAttr(n, 'map').body;
      return body.kind === 'read' ? body.indices.map((e) => substituteIndex(e, at)) : undefined;
    }
    default:
      return undefined;
  }
}

function run(g: Graph, ctx: PassContext): Graph {
  const du = new DefUse(g);
  // Per movement node: its root (first non-movement ancestor) and the root indices at its result index.
  const maps = new Map<number, { root: number; indices: ScalarExpr[] }>();
  for (const n of g.nodes) {
    if (!movementOps.has(n.op)) continue;
    const src = g.nodes[n.operands[0] ?? -1];
    if (src === undefined) continue;
    const at = n.type.shape.map((_, k) => idx(k));
    const local = sourceIndices(n, src, at);
    if (local === undefined) continue;
    const up = maps.get(src.id);
    if (movementOps.has(src.op) && up === undefined) continue;
    maps.set(n.id, up === undefined ? { root: src.id, indices: local } : { root: up.root, indices: up.indices.map((e) => substituteIndex(e, local)) });
  }
  // Foldable: expressible, not an output, every use a view reader or a foldable movement node (consumers first).
  const foldable = new Set<number>();
  for (let i = g.nodes.length - 1; i >= 0; i--) {
    const n = g.nodes[i];
    if (n === undefined || !maps.has(n.id) || du.isOutput(n.id)) continue;
    const us = du.uses(n.id);
    if (us.length > 0 && us.every((u) => (movementOps.has(u.user.op) ? foldable.has(u.user.id) : readsViews(u.user, u.operand)))) foldable.add(n.id);
  }
  // Only nodes read by a non-movement consumer become views; chain interiors die.
  const made = [...foldable].filter((id) => du.uses(id).some((u) => !movementOps.has(u.user.op)));
  if (made.length === 0 || made.every((id) => g.nodes[id]?.op === 'view' && !movementOps.has(g.nodes[g.nodes[id]?.operands[0] ?? -1]?.op ?? ''))) return g;
  const viewIds = new Set(made);
  let count = 0;
  const out = rebuildGraph(g, (n, r) => {
    const m = maps.get(n.id);
    if (!viewIds.has(n.id) || m === undefined) return foldable.has(n.id) ? undefined : r.copy(n); // undefined: interior of a folded chain
    const root = du.node(m.root);
    count++;
    return r.b.add({
      op: 'view',
      operands: [r.mapped(m.root)],
      attrs: {
        shape: { kind: 'dims', value: n.type.shape },
        map: { kind: 'lambda', params: n.type.shape.map((_, k) => `i${k}`), body: { kind: 'read', operand: 0, indices: m.indices, dtype: root.type.dtype } },
      },
      type: n.type,
      loc: n.loc,
      ...(n.from !== undefined ? { from: n.from } : {}),
      ...(n.scope !== undefined ? { scope: n.scope } : {}),
    });
  });
  countRuleHits(ctx, `${NAME}/view`, count);
  return out;
}

export const foldViews: GraphPass = {
  name: NAME,
  summary: 'slice/reshape/permute chains read only by matmuls, attention and fused maps become copy-free index-mapped views',
  run,
};
