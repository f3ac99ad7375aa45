// The lambdas of a fused_attention node (score, mask, qload, kload) as inline kernel expressions,
// the Q and K types they imply, and the bytes their reads move (attention/attention.ts's kernels).
import type { Graph, Node, ScalarExpr } from '../../graph/ir.js';
import type { TensorType } from '../../graph/types.js';
import { type AttentionInput, attentionInputType, attentionLoads } from '../../ops/attention.js';
import { foldScalarExpr, isLazyWhere, someScalarExpr } from '../../graph/lambda.js';
import { type Expr, type Stmt, add, cast, load, mul, u32 } from '../ir/ir.js';
import { KernelBuilder } from '../ir/builder.js';
import { dimExpr } from '../lower/dims.js';
import { type ApplyExpr, type ReadExpr, translateScalar } from '../lower/lambda.js';
import { elementOffset } from '../lower/view.js';
import { computeType, storageBytes, storageType } from '../ir/storage.js';

export function lambdaOf(n: Node, key: string): ScalarExpr | undefined {
  const a = n.attrs[key];
  return a !== undefined && a.kind === 'lambda' ? a.body : undefined;
}

/** The type of Q, K or V as the kernel sees it (attentionInputType: with a load lambda, its shape). */
function inputType(which: AttentionInput, operand: Node, n: Node): TensorType {
  const t = attentionInputType(which, operand.type, n.attrs);
  if (t === undefined) throw new Error(`internal: fused_attention ${attentionLoads[which].load} without ${attentionLoads[which].shape}`);
  return t;
}

/** Q's type: operand 0's, or `qshape` when a `qload` lambda computes Q at load. */
export const queryType = (q: Node, n: Node): TensorType => inputType('q', q, n);
/** K's type: operand 1's, or `kshape` when a `kload` lambda computes K at load. */
export const keyType = (k: Node, n: Node): TensorType => inputType('k', k, n);
/** V's type: operand 2's, or `vshape` when a `vload` lambda computes V at load. */
export const valueType = (v: Node, n: Node): TensorType => inputType('v', v, n);

export interface Compiled {
  readonly kb: KernelBuilder;
  readonly slotOf: (operand: number) => number;
}

/**
 * A score, mask, qload or kload lambda as an inline kernel expression (lower/lambda.ts, each op
 * let-bound as `lam`); `score()` is `scoreVar`.
 */
export function lambdaExpr(c: Compiled, g: Graph, n: Node, out: Stmt[], e: ScalarExpr, idx: readonly Expr[], scoreVar: Expr | undefined): Expr {
  const read = (x: ReadExpr, at: (y: ScalarExpr) => Expr): Expr => {
    const id = n.operands[x.operand];
    const o = id === undefined ? undefined : g.nodes[id];
    if (o === undefined) throw new Error(`internal: fused_attention lambda reads missing operand ${x.operand}`);
    const slot = c.slotOf(x.operand);
    // A qload's operand 0 may be a view (fold-views: the projection read in head layout).
    if (o.op === 'view') return cast(computeType(x.dtype), load(slot, elementOffset(g, o, x.indices.map((ix) => cast('u32', at(ix))), dimExpr), storageType(o.type.dtype)));
    let index: Expr = u32(0);
    let stride: Expr = u32(1);
    for (let k = o.type.shape.length - 1; k >= 0; k--) {
      const ix = x.indices[k];
      if (ix !== undefined) index = add(index, mul(cast('u32', at(ix)), stride));
      stride = mul(stride, dimExpr(o.type.shape[k] ?? { terms: [] }));
    }
    return cast(computeType(x.dtype), load(slot, index, storageType(o.type.dtype)));
  };
  const nullary = (x: ApplyExpr): Expr | undefined => {
    if (x.op !== 'score') return undefined;
    if (scoreVar === undefined) throw new Error('internal: score() outside the score lambda');
    return scoreVar;
  };
  return translateScalar(e, out, { kb: c.kb, idx, read, nullary, bindApply: 'lam' });
}

/** Bytes one evaluation of a lambda reads (a lazy where reads one branch: the dearer one counts). */
export function readBytesOf(g: Graph, n: Node, e: ScalarExpr | undefined): number {
  if (e === undefined) return 0;
  return foldScalarExpr<number>(e, (x, inner) => {
    if (x.kind === 'read') {
      const id = n.operands[x.operand];
      const o = id === undefined ? undefined : g.nodes[id];
      return (o === undefined ? 0 : storageBytes(o.type.dtype)) + inner.reduce((s, y) => s + y, 0);
    }
    const [c, a, b] = inner;
    if (isLazyWhere(x) && c !== undefined) return c + Math.max(a ?? 0, b ?? 0);
    return inner.reduce((s, y) => s + y, 0);
  });
}

/**
 * Bytes a load lambda (qload, kload, vload: params (b, h, s, d)) reads for one row of `width`
 * elements. A read whose indices do not mention d (an int8 cache's per-row scale, a page-table
 * entry, a position) is the same element for every d of the row: counted once, as a GPU warp's
 * lanes (consecutive d) get it in one request and a CPU's cache serves the repeats; reads that
 * depend on d count `width` times (readBytesOf per element).
 */
export function rowReadBytesOf(g: Graph, n: Node, e: ScalarExpr | undefined, width: number): number {
  if (e === undefined) return 0;
  const mentionsD = (x: ScalarExpr): boolean => someScalarExpr(x, (y) => y.kind === 'index' && y.axis === 3);
  return foldScalarExpr<number>(e, (x, inner) => {
    if (x.kind === 'read') {
      const id = n.operands[x.operand];
      const o = id === undefined ? undefined : g.nodes[id];
      const bytes = o === undefined ? 0 : storageBytes(o.type.dtype);
      return bytes * (x.indices.some(mentionsD) ? width : 1) + inner.reduce((s, y) => s + y, 0);
    }
    const [c, a, b] = inner;
    if (isLazyWhere(x) && c !== undefined) return c + Math.max(a ?? 0, b ?? 0);
    return inner.reduce((s, y) => s + y, 0);
  });
}
