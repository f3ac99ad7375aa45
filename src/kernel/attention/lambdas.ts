// The lambdas of a fused_attention node (score, mask, qload, kload, vload) as inline kernel expressions,
// the Q and K types they imply, and the bytes their reads move (attention/attention.ts's kernels).
import type { Graph, Node, ScalarExpr } from '../../graph/ir.js';
import type { TensorType } from '../../graph/types.js';
import { type AttentionInput, attentionInputType, attentionLoads } from '../../ops/attention.js';
import { foldScalarExpr, hasRead, isLazyWhere, someScalarExpr } from '../../graph/lambda.js';
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
 * In a Q/K/V load lambda, every `where` with a read in a branch runs as if/else: the element is
 * read from one place (a paged cache: the new tokens or the pool), not from both and selected.
 */
export function loadLazyWhere(e: ScalarExpr): boolean {
  if (e.kind !== 'apply' || e.op !== 'where') return false;
  const [, a, b] = e.args;
  return hasRead(a) || hasRead(b);
}

/**
 * A score, mask, qload, kload or vload lambda as an inline kernel expression (lower/lambda.ts,
 * each op let-bound as `lam`); `score()` is `scoreVar`. `isLoad`: a Q/K/V load (loadLazyWhere).
 */
export function lambdaExpr(c: Compiled, g: Graph, n: Node, out: Stmt[], e: ScalarExpr, idx: readonly Expr[], scoreVar: Expr | undefined, isLoad = false): Expr {
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
  return translateScalar(e, out, { kb: c.kb, idx, read, nullary, bindApply: 'lam', ...(isLoad ? { lazyWhere: loadLazyWhere } : {}) });
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

/** Bytes read per evaluation, split by what the read addresses vary with (see classifiedBytes). */
type ByClass = readonly [inner: number, outer: number, uniform: number];

/**
 * Bytes one evaluation of a lambda reads, by class of address: `inner` varies with one of
 * `innerAxes` (a K/V element d; a score's q or k), `outer` only with `outerAxes` (a key s: a page
 * table entry or an int8 cache's per-row scale is one address for every element of the key),
 * `uniform` with neither (a per-batch length: one address for the whole tile). A lazy where reads
 * its condition and, per class, the dearer branch (`isLoad`: also loadLazyWhere's).
 */
function classifiedBytes(g: Graph, n: Node, e: ScalarExpr, innerAxes: readonly number[], outerAxes: readonly number[], isLoad: boolean): ByClass {
  const uses = (x: ScalarExpr, axes: readonly number[]): boolean => someScalarExpr(x, (y) => y.kind === 'index' && axes.includes(y.axis));
  const sum = (xs: readonly ByClass[]): ByClass => xs.reduce<ByClass>((a, b) => [a[0] + b[0], a[1] + b[1], a[2] + b[2]], [0, 0, 0]);
  return foldScalarExpr<ByClass>(e, (x, inner) => {
    if (x.kind === 'read') {
      const id = n.operands[x.operand];
      const o = id === undefined ? undefined : g.nodes[id];
      const bytes = o === undefined ? 0 : storageBytes(o.type.dtype);
      const own: ByClass = x.indices.some((i) => uses(i, innerAxes)) ? [bytes, 0, 0] : x.indices.some((i) => uses(i, outerAxes)) ? [0, bytes, 0] : [0, 0, bytes];
      return sum([own, ...inner]);
    }
    const [c, a, b] = inner;
    if ((isLazyWhere(x) || (isLoad && loadLazyWhere(x))) && c !== undefined) {
      const [a0, a1, a2] = a ?? [0, 0, 0];
      const [b0, b1, b2] = b ?? [0, 0, 0];
      return sum([c, [Math.max(a0, b0), Math.max(a1, b1), Math.max(a2, b2)]]);
    }
    return sum(inner);
  });
}

/**
 * Bytes a load lambda (qload, kload, vload: params (b, h, s, d)) reads for one row (a key, or a
 * query) of `width` elements, and per key tile: reads that vary with d count per element; those
 * that vary with s only (a paged cache's table entry, an int8 cache's per-row scale) once per row,
 * as a GPU warp's lanes (consecutive d) get the word in one request and a CPU's cache serves the
 * repeats; the rest (a row's length or first page) once per tile. The kernel still evaluates the
 * lambda per element: this counts the distinct words requested, not each re-read.
 */
export function loadBytesOf(g: Graph, n: Node, e: ScalarExpr, width: number): { readonly perRow: number; readonly perTile: number } {
  const [element, row, uniform] = classifiedBytes(g, n, e, [3], [2], true);
  return { perRow: width * element + row, perTile: uniform };
}

/** Bytes a mask or score lambda (over (b, h, q, k)) reads per score element, and per tile (reads of neither q nor k: a per-batch length). */
export function scoreBytesOf(g: Graph, n: Node, e: ScalarExpr | undefined): { readonly perScore: number; readonly perTile: number } {
  if (e === undefined) return { perScore: 0, perTile: 0 };
  const [inner, outer, uniform] = classifiedBytes(g, n, e, [2, 3], [], false);
  return { perScore: inner + outer, perTile: uniform };
}
