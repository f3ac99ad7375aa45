// Index-mapped operand reads for the kernel lowering: a `view` node (made by the fold-views
// pass) has no buffer of its own; a consumer that reads it at a multi-index computes the address
// in the view's source buffer from the view's `map` lambda. Used by the tiled matmul (A and B
// staging), the fused_map/epilogue reads (lower/fused.ts) and fused_attention's q/k/v tiles.
import { dimConst, dimConstValue } from '../../base/dim.js';
import type { Dim } from '../../base/dim.js';
import type { Graph, Node, ScalarExpr } from '../../graph/ir.js';
import { lambdaAttr } from '../../graph/ir.js';
import { type Expr, add, bin, cast, lit, mul, u32 } from '../ir/ir.js';

/** The node a view reads (its operand 0) and the source indices as expressions over the view's indices. */
export function viewMapOf(g: Graph, n: Node): { readonly source: Node; readonly indices: readonly ScalarExpr[] } {
  const src = g.nodes[n.operands[0] ?? -1];
  const body = lambdaAttr(n, 'map').body;
  if (src === undefined || body.kind !== 'read') throw new Error(`internal: view %${n.id} must read its operand 0`);
  return { source: src, indices: body.indices };
}

/** An i32 index expression of a view map (index, dim, const, add/sub/mul/div/mod) as a kernel u32 expression. */
export function indexExpr(e: ScalarExpr, idx: readonly Expr[], dimExpr: (d: Dim) => Expr): Expr {
  switch (e.kind) {
    case 'index':
      return idx[e.axis] ?? u32(0);
    case 'dim':
      return dimExpr(e.dim);
    case 'const':
      return u32(e.value);
    case 'read':
      throw new Error('internal: a view index reads a tensor');
    case 'apply': {
      const [a, b] = e.args.map((x) => indexExpr(x, idx, dimExpr));
      if (a === undefined || b === undefined) throw new Error(`internal: view index op '${e.op}' needs 2 arguments`);
      // Indices are non-negative, so floor mod is the remainder and u32 arithmetic is exact.
      switch (e.op) {
        case 'add':
          return add(a, b);
        case 'mul':
          return mul(a, b);
        case 'sub':
          return bin('sub', a, b);
        case 'div':
          return bin('div', a, b);
        case 'mod':
          return bin('rem', a, b);
        default:
          throw new Error(`internal: view index op '${e.op}'`);
      }
    }
  }
}

/** Row-major flat offset of a multi-index (u32 expressions) into `shape`. */
export function rowMajor(shape: readonly Dim[], idx: readonly Expr[], dimExpr: (d: Dim) => Expr): Expr {
  let index: Expr = u32(0);
  let stride: Expr = u32(1);
  for (let k = shape.length - 1; k >= 0; k--) {
    index = add(index, mul(idx[k] ?? u32(0), stride));
    stride = mul(stride, dimExpr(shape[k] ?? dimConst(1)));
  }
  return index;
}

/**
 * The flat element offset, in the buffer that holds `o`'s data, of `o` at the multi-index `idx`
 * (u32 per axis of `o`): row-major for an ordinary value, through the map for a view.
 */
export function elementOffset(g: Graph, o: Node, idx: readonly Expr[], dimExpr: (d: Dim) => Expr): Expr {
  if (o.op !== 'view') return rowMajor(o.type.shape, idx, dimExpr);
  const { source, indices } = viewMapOf(g, o);
  return rowMajor(source.type.shape, indices.map((e) => indexExpr(e, idx, dimExpr)), dimExpr);
}

/** u32 multi-index of a row-major flat offset into `shape` (no lets: pure expressions). */
export function unravel(shape: readonly Dim[], flat: Expr, dimExpr: (d: Dim) => Expr): Expr[] {
  const out: Expr[] = new Array<Expr>(shape.length);
  let rest = flat;
  for (let k = shape.length - 1; k >= 0; k--) {
    const d = dimExpr(shape[k] ?? dimConst(1));
    if (k === 0) out[0] = rest;
    else {
      out[k] = bin('rem', rest, d);
      rest = bin('div', rest, d);
    }
  }
  return out;
}

export const castU32 = (e: Expr): Expr => cast('u32', e);
export const zeroU32 = (): Expr => lit('u32', 0);


/**
 * Whether `o`'s elements along `axis` come in aligned runs of `width` in its buffer: for an index
 * i = width*q + r along `axis` (the other indices fixed), the element's offset is base + r with
 * base a multiple of `width`, so one vector load of the buffer reads the run. Needs `axis`'s
 * extent and the source's last dim to be constant multiples of `width`; through a view, the
 * source's last index must be i itself, `mod(i, c)` or a sum with multiples of `width`, and the
 * other source indices may use i only through `div(i, c)` (c a multiple of `width`).
 */
export function hasVectorRuns(g: Graph, o: Node, axis: number, width: number): boolean {
  const extent = dimConstValue(o.type.shape[axis] ?? dimConst(1));
  if (extent === undefined || extent % width !== 0) return false;
  if (o.op !== 'view') return axis === o.type.shape.length - 1;
  const { source, indices } = viewMapOf(g, o);
  const last = dimConstValue(source.type.shape[source.type.shape.length - 1] ?? dimConst(1));
  if (last === undefined || last % width !== 0) return false;
  const isMultiple = (e: ScalarExpr): boolean => {
    switch (e.kind) {
      case 'const':
        return e.value % width === 0;
      case 'dim': {
        const c = dimConstValue(e.dim);
        return c !== undefined && c % width === 0;
      }
      case 'apply':
        if (e.op === 'mul') return e.args.some((x) => isMultiple(x) && !mentions(x));
        if (e.op === 'add' || e.op === 'sub') return e.args.every(isMultiple);
        return false;
      default:
        return false;
    }
  };
  const mentions = (e: ScalarExpr): boolean => (e.kind === 'index' ? e.axis === axis : e.kind === 'apply' ? e.args.some(mentions) : false);
  // 'run': width*q' + r with the aligned part independent of r; 'free': no r in it; 'bad' otherwise.
  const form = (e: ScalarExpr): 'run' | 'free' | 'bad' => {
    if (!mentions(e)) return 'free';
    if (e.kind === 'index') return 'run';
    if (e.kind !== 'apply') return 'bad';
    const [x, y] = e.args;
    if (x === undefined || y === undefined) return 'bad';
    const c = y.kind === 'const' ? y.value : undefined;
    switch (e.op) {
      case 'add': {
        const fx = form(x);
        const fy = form(y);
        if (fx === 'run' && fy === 'free') return isMultiple(y) ? 'run' : 'bad';
        if (fy === 'run' && fx === 'free') return isMultiple(x) ? 'run' : 'bad';
        return 'bad';
      }
      case 'mod':
        return form(x) === 'run' && c !== undefined && c % width === 0 ? 'run' : 'bad';
      case 'div':
        return form(x) === 'run' && c !== undefined && c % width === 0 ? 'free' : 'bad';
      default:
        return 'bad';
    }
  };
  const lastIndex = indices[indices.length - 1];
  if (lastIndex === undefined || form(lastIndex) !== 'run') return false;
  return indices.slice(0, -1).every((e) => form(e) === 'free');
}

/**
 * The axis of `o` along which consecutive elements are consecutive in memory: the last for an
 * ordinary value; for a view, the axis that alone forms the source's last index (a transpose
 * moves it, a slice or a layer index keeps it); undefined when there is none.
 */
export function unitStrideAxis(g: Graph, o: Node): number | undefined {
  if (o.op !== 'view') return o.type.shape.length - 1;
  const { indices } = viewMapOf(g, o);
  const last = indices[indices.length - 1];
  if (last === undefined || last.kind !== 'index') return undefined;
  const mentions = (e: ScalarExpr): boolean => (e.kind === 'index' ? e.axis === last.axis : e.kind === 'apply' ? e.args.some(mentions) : false);
  return indices.slice(0, -1).some(mentions) ? undefined : last.axis;
}
