// fuse-epilogue: a matmul whose only use is an elementwise consumer of the same shape (a lone
// op, or a fused_map from fuse-elementwise: bias add, gelu/silu/relu, residual add, the SwiGLU
// multiply by a second matmul's result) becomes one `fused_matmul`: the consumer's lambda runs
// on the accumulator in registers before the store, so the product never reaches memory.
//
//   before                                              after
//   %2 = matmul %0, %1 : f32[T,8]                       %4 = fused_matmul %0, %1, %3 {epilogue=(i0, i1) =>
//   %4 = fused_map %2, %3 {body=(i0, i1) =>                  gelu(add(acc(), read(2, i1)))} : f32[T,8]
//        gelu(add(read(0, i0, i1), read(1, i1))), ...}
//
// Paired (pack-weights' gate/up): a consumer of half the product's last dim that reads it only at
// j and N + j (`silu(gate) * up` over the packed product) becomes a fused_matmul with `pair`:
// `acc()` is column j, `acc_pair()` column N + j; the decode kernels compute both in one
// workgroup and write only the result (MatmulSchedule.pairFold).
//
// In the epilogue `acc()` is the product at the result index; `read(k, ...)` for k >= 2 reads the
// consumer's other operands (each read once per result element). Runs after fuse-elementwise,
// so a whole chain (bias + activation + residual) lands in one epilogue. Not fused, with a
// remark: a matmul with several uses, a graph output, or a consumer that broadcasts the product
// or reads it at another index. Needs: types inferred. Keeps: outputs, interface, types.
import { dimConst, dimConstValue } from '../base/dim.js';
import { type Graph, type Node, type ScalarExpr, attr } from '../graph/ir.js';
import { DefUse, rebuildGraph } from '../graph/rewrite.js';
import { shapeEquals } from '../graph/types.js';
import { lambdaOf } from './fuse-elementwise.js';
import { countRuleHits, type GraphPass, type PassContext } from './pass.js';
import { mapScalarExpr, someScalarExpr } from '../graph/lambda.js';

const NAME = 'fuse-epilogue';

/** Whether every read of operand `k` in `e` is at the identity index (i0, i1, ...). */
function readsAtIdentity(e: ScalarExpr, k: number): boolean {
  return !someScalarExpr(e, (x) => x.kind === 'read' && x.operand === k && !x.indices.every((y, i) => y.kind === 'index' && y.axis === i));
}

/** `i_axis + half` (an index plus a constant), as fuse-elementwise writes a slice's offset. */
function isShiftedIndex(e: ScalarExpr, axis: number, half: number): boolean {
  if (e.kind !== 'apply' || e.op !== 'add') return false;
  const [x, y] = e.args;
  const c = y?.kind === 'dim' ? dimConstValue(y.dim) : y?.kind === 'const' ? y.value : undefined;
  return x?.kind === 'index' && x.axis === axis && c === half;
}

/**
 * The paired form (pack-weights' gate/up: `silu(gate) * up` over the two halves of one product):
 * the consumer is the product's shape with the last dim halved, and every read of operand `k`
 * is at the identity index (the first half) or at `(..., i_last + half)` (the second).
 */
function readsPaired(e: ScalarExpr, k: number, rank: number, half: number): boolean {
  return !someScalarExpr(
    e,
    (x) =>
      x.kind === 'read' &&
      x.operand === k &&
      !x.indices.every((y, i) => (y.kind === 'index' && y.axis === i) || (i === rank - 1 && isShiftedIndex(y, i, half))),
  );
}

/** The half N when `c` (shape [..., N]) may read `m` (shape [..., 2N]) as a pair, else undefined. */
function pairHalf(m: Node, c: Node): number | undefined {
  const rank = m.type.shape.length;
  const full = dimConstValue(m.type.shape[rank - 1] ?? dimConst(0));
  const last = dimConstValue(c.type.shape[rank - 1] ?? dimConst(0));
  if (full === undefined || last === undefined || full !== 2 * last || c.type.shape.length !== rank) return undefined;
  return shapeEquals(c.type.shape.slice(0, -1), m.type.shape.slice(0, -1)) ? last : undefined;
}

/** Reads of operand `k` become `acc()` (or, shifted by a pair's half, `acc_pair()`); other operands move to `remap(j)`. */
function toEpilogue(e: ScalarExpr, k: number, accType: Node['type']['dtype'], remap: (j: number) => number, half?: number): ScalarExpr {
  return mapScalarExpr(e, (x, rec) => {
    if (x.kind !== 'read') return undefined;
    if (x.operand === k) {
      const shifted = half !== undefined && x.indices.some((y, i) => isShiftedIndex(y, i, half));
      return { kind: 'apply', op: shifted ? 'acc_pair' : 'acc', args: [], dtype: accType };
    }
    return { ...x, operand: remap(x.operand), indices: x.indices.map(rec) };
  });
}

function run(g: Graph, ctx: PassContext): Graph {
  const du = new DefUse(g);
  // consumer id -> the matmul it absorbs
  const plan = new Map<number, Node>();
  const absorbed = new Set<number>();
  const paired = new Map<number, number>(); // consumer id -> the pair's half N
  for (const m of g.nodes) {
    if (m.op !== 'matmul') continue;
    const us = du.users(m.id);
    const c = us[0];
    const why =
      du.isOutput(m.id) ? 'its result is a graph output'
      : us.length !== 1 || c === undefined ? `its result has ${us.length} uses`
      : plan.has(c.id) ? 'its consumer already takes another matmul as epilogue (that one is read as an operand)'
      : lambdaOf(g, c) === undefined ? `its consumer ${c.op} is not elementwise`
      : !shapeEquals(c.type.shape, m.type.shape) && pairHalf(m, c) === undefined ? 'its consumer broadcasts the product to a larger shape'
      : undefined;
    if (why !== undefined) {
      if (us.length > 0) ctx.remark({ pass: NAME, loc: m.loc, message: `matmul epilogue not fused: ${why}` });
      continue;
    }
    if (c === undefined) continue;
    const l = lambdaOf(g, c);
    const k = c.operands.indexOf(m.id);
    const half = shapeEquals(c.type.shape, m.type.shape) ? undefined : pairHalf(m, c);
    const ok = l !== undefined && (half === undefined ? readsAtIdentity(l.body, k) : readsPaired(l.body, k, m.type.shape.length, half));
    if (l === undefined || !ok) {
      ctx.remark({ pass: NAME, loc: m.loc, message: `matmul epilogue not fused: its consumer reads the product at another index${half === undefined ? '' : ' than j and N + j (a paired epilogue)'}` });
      continue;
    }
    if (half !== undefined) paired.set(c.id, half);
    plan.set(c.id, m);
    absorbed.add(m.id);
  }
  if (plan.size === 0) return g;
  const out = rebuildGraph(g, (n, r) => {
    if (absorbed.has(n.id)) return undefined;
    const m = plan.get(n.id);
    const l = m === undefined ? undefined : lambdaOf(g, n);
    if (m === undefined || l === undefined) return r.copy(n);
    const k = n.operands.indexOf(m.id);
    // Operand j of the consumer (j != k) becomes operand 2 + (its position among the others).
    const others = n.operands.map((_, j) => j).filter((j) => j !== k);
    const half = paired.get(n.id);
    const epilogue = toEpilogue(l.body, k, m.type.dtype, (j) => 2 + others.indexOf(j), half);
    return r.b.add({
      op: 'fused_matmul',
      operands: [...m.operands, ...others.map((j) => n.operands[j] ?? -1)].map(r.mapped),
      attrs: { epilogue: { kind: 'lambda', params: l.params, body: epilogue }, ...(half === undefined ? {} : { pair: attr.bool(true) }) },
      type: n.type,
      loc: m.loc,
      from: [m.loc, n.loc, ...(n.from ?? [])],
      // Kernel names follow the source (`mlp_l0_fused_matmul`): keep the matmul's scope.
      ...(m.scope !== undefined ? { scope: m.scope } : {}),
    });
  });
  countRuleHits(ctx, `${NAME}/fused_matmul`, plan.size - paired.size);
  if (paired.size > 0) countRuleHits(ctx, `${NAME}/paired`, paired.size);
  return out;
}

export const fuseEpilogue: GraphPass = {
  name: NAME,
  summary: 'fold a matmul\'s elementwise consumer (bias, activation, residual, SwiGLU gate) into a fused_matmul epilogue',
  run,
};
