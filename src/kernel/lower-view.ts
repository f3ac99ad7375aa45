// Index-mapped operand reads for the kernel lowering: a `view` node (made by the fold-views
// pass) has no buffer of its own; a consumer that reads it at a multi-index computes the address
// in the view's source buffer from the view's `map` lambda. Used by the tiled matmul (A and B
// staging), the fused_map/epilogue reads (lower-fused.ts) and fused_attention's q/k/v tiles.
import { dimConst } from '../check/dim.js';
import type { Dim } from '../check/dim.js';
import type { Graph, Node, ScalarExpr } from '../graph/ir.js';
import { lambdaAttr } from '../graph/ir.js';
import { type Expr, add, bin, cast, lit, mul, u32 } from './ir.js';

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

