// Kernel lowering of the fused ops made by the neighbour-fusion passes: `fused_map` as one
// one-thread-per-element kernel, and the epilogue of `fused_matmul` (applied in registers by
// the tiled matmul in lower/lower.ts just before its store). Lambda bodies are translated with common
// subexpressions shared (gelu's tanh form uses its argument four times), and every distinct
// (operand, index) read is loaded once per output element.
import { dimAdd, dimConst, dimMul, dimSub, printDim } from '../../base/dim.js';
import type { Node, ScalarExpr } from '../../graph/ir.js';
import { lambdaAttr } from '../../graph/ir.js';
import { printScalarExpr } from '../../graph/print.js';
import type { Dim } from '../../base/dim.js';
import { type Expr, type Stmt, type Traffic, add, cast, div, load, mul, rem, u32 } from '../ir/ir.js';
import { type ApplyExpr, type ReadExpr, translateScalar } from './lambda.js';
import type { SizeExpr } from '../plan/plan.js';
import { computeType, storageBytes, storageType } from '../ir/storage.js';
import { dimToSize } from '../plan/to-size.js';
import { mapTraffic } from '../analysis/traffic.js';
import { indexBelow, isLazyWhere, substituteIndex } from '../../graph/lambda.js';

/** What the fused lowering needs from lower/lower.ts's Lowering (kept narrow on purpose). */
export interface FusedHost {
  operand(n: Node, i: number): Node;
  /** A scalar const folded into its consumers (no buffer): its literal, else undefined. */
  folded(n: Node): Expr | undefined;
  dimExpr(d: Dim): Expr;
  flops(n: Node): SizeExpr;
  /** Per-element kernel builder (ir/builder.ts KernelBuilder), seen through what we use. */
  readonly kb: {
    input(role: string, value: number, dtype: Node['type']['dtype']): number;
    let(out: Stmt[], prefix: string, init: Expr): Expr;
    fresh(prefix: string): string;
  };
}

/** The output multi-index (u32 per axis) from a flat row-major index, as lets in `body`. */
export function unravelFlat(host: FusedHost, body: Stmt[], shape: readonly Dim[], flat: Expr): Expr[] {
  const idx: Expr[] = new Array<Expr>(shape.length);
  let rest = flat;
  for (let k = shape.length - 1; k >= 0; k--) {
    const d = host.dimExpr(shape[k] ?? dimConst(1));
    if (k === 0) idx[0] = host.kb.let(body, 'i0', rest);
    else {
      idx[k] = host.kb.let(body, `i${k}`, rem(rest, d));
      rest = host.kb.let(body, `q${k}`, div(rest, d));
    }
  }
  return idx;
}

const isIdentity = (indices: readonly ScalarExpr[]): boolean => indices.every((x, i) => x.kind === 'index' && x.axis === i);

/**
 * Translates a lambda body at one output element (lower/lambda.ts, sharing equal subexpressions
 * and let-binding each op). `idx` is the output multi-index, `flat` its row-major offset;
 * `operands` are the node's operand nodes; `acc` replaces `acc()`.
 */
export function translateLambda(
  host: FusedHost,
  body: Stmt[],
  n: Node,
  params: readonly string[],
  e: ScalarExpr,
  operands: readonly Node[],
  idx: readonly Expr[],
  flat: Expr,
  acc?: Expr,
  accPair?: Expr,
): Expr {
  const slots = new Map<number, number>();
  const outShape = n.type.shape;
  const read = (x: ReadExpr, at: (y: ScalarExpr) => Expr, out: Stmt[]): Expr => {
    const o = operands[x.operand];
    if (o === undefined) throw new Error(`internal: ${n.op} reads missing operand ${x.operand}`);
    const lit0 = host.folded(o);
    if (lit0 !== undefined) return lit0;
    let slot = slots.get(x.operand);
    if (slot === undefined) {
      slot = host.kb.input(`t${x.operand}`, o.id, o.type.dtype);
      slots.set(x.operand, slot);
    }
    // A view (fold-views) is read in its source's buffer at the map's indices.
    const viewMap = o.op === 'view' ? lambdaAttr(o, 'map').body : undefined;
    const readShape = viewMap === undefined ? o.type.shape : host.operand(o, 0).type.shape;
    const readAt = viewMap === undefined || viewMap.kind !== 'read' ? x.indices : viewMap.indices.map((y) => substituteIndex(y, x.indices));
    let index: Expr;
    if (viewMap === undefined && isIdentity(x.indices) && o.type.shape.length === outShape.length && sameShape(o.type.shape, outShape)) index = flat;
    else {
      // Row-major offset of the read element.
      index = u32(0);
      let stride: Expr = u32(1);
      for (let k = readShape.length - 1; k >= 0; k--) {
        const ix = readAt[k];
        if (ix === undefined) throw new Error('internal: read with too few indices');
        const isZero = ix.kind === 'const' && ix.value === 0;
        if (!isZero) index = add(index, mul(cast('u32', at(ix)), stride));
        stride = mul(stride, host.dimExpr(readShape[k] ?? dimConst(1)));
      }
    }
    return host.kb.let(out, `t${x.operand}_v`, cast(computeType(x.dtype), load(slot, index, storageType(o.type.dtype))));
  };
  const nullary = (x: ApplyExpr): Expr | undefined => {
    if (x.op === 'acc_pair') {
      if (accPair === undefined) throw new Error(`internal: acc_pair() outside a paired fused_matmul epilogue`);
      return cast(computeType(x.dtype), accPair);
    }
    if (x.op !== 'acc') return undefined;
    if (acc === undefined) throw new Error(`internal: acc() outside a fused_matmul epilogue`);
    return cast(computeType(x.dtype), acc);
  };
  const shareKey = (x: ScalarExpr): string => printScalarExpr(x, params, operands.map((o) => o.type));
  return translateScalar(e, body, { kb: host.kb, idx, dim: host.dimExpr, read, nullary, bindApply: 'e', shareKey });
}

function sameShape(a: readonly Dim[], b: readonly Dim[]): boolean {
  return a.length === b.length && a.every((d, i) => JSON.stringify(d) === JSON.stringify(b[i]));
}

/** Per-axis index ranges [lo, hi) of the elements a branch of a lazy `where` runs for. */
type Region = readonly (readonly [Dim, Dim])[];

/**
 * Distinct reads in a lambda (operand, index text and region): each is one load per element of
 * its region. A lazy `where` (`index < bound`, translateLambda) runs one branch per element, so
 * each branch's reads count only over its part of the result (a concat reads each operand once).
 */
function distinctReads(n: Node, params: readonly string[], e: ScalarExpr, operands: readonly Node[], region: Region, out: Map<string, { node: Node; region: Region }>): void {
  switch (e.kind) {
    case 'index':
    case 'dim':
    case 'const':
      return;
    case 'apply': {
      const [c, a, b] = e.args;
      const split = isLazyWhere(e) && c !== undefined ? indexBelow(c) : undefined;
      const r = split === undefined ? undefined : region[split.axis];
      if (split === undefined || r === undefined || c === undefined || a === undefined || b === undefined) {
        for (const x of e.args) distinctReads(n, params, x, operands, region, out);
        return;
      }
      distinctReads(n, params, c, operands, region, out);
      distinctReads(n, params, a, operands, region.map((x, k) => (k === split.axis ? [r[0], split.bound] : x)), out);
      distinctReads(n, params, b, operands, region.map((x, k) => (k === split.axis ? [split.bound, r[1]] : x)), out);
      return;
    }
    case 'read': {
      const o = operands[e.operand];
      const text = printScalarExpr(e, params, operands.map((x) => x.type));
      if (o !== undefined) out.set(`${text} in ${region.map(([lo, hi]) => `${printDim(lo)}:${printDim(hi)}`).join(',')}`, { node: o, region });
      for (const a of e.indices) distinctReads(n, params, a, operands, region, out);
      return;
    }
  }
}

/** Bytes the lambda reads from global memory for the whole result (analysis/traffic.ts's rule: no cache credit). */
export function lambdaReadBytes(host: FusedHost, n: Node, params: readonly string[], e: ScalarExpr, operands: readonly Node[]): SizeExpr {
  const reads = new Map<string, { node: Node; region: Region }>();
  distinctReads(n, params, e, operands, n.type.shape.map((d) => [dimConst(0), d] as const), reads);
  // Summed as one dim polynomial, so equal terms merge (512*B*T, not 128*B*T + 128*B*T + ...).
  let total = dimConst(0);
  for (const r of reads.values()) {
    if (host.folded(r.node) !== undefined) continue;
    const elements = r.region.reduce((acc, [lo, hi]) => dimMul(acc, dimSub(hi, lo)), dimConst(1));
    total = dimAdd(total, dimMul(elements, dimConst(storageBytes(r.node.type.dtype))));
  }
  return dimToSize(total);
}

/** The traffic of a fused_map kernel: distinct reads per element, one store per element. */
export function fusedMapTraffic(host: FusedHost, n: Node): Traffic {
  const l = lambdaAttr(n, 'body');
  const operands = n.operands.map((_, i) => host.operand(n, i));
  const t = mapTraffic(n, [], host.flops(n));
  return { ...t, bytesRead: lambdaReadBytes(host, n, l.params, l.body, operands) };
}

/** The epilogue's extra reads (operands 2.. of a fused_matmul), added to the matmul's traffic. */
export function epilogueReadBytes(host: FusedHost, n: Node): SizeExpr {
  const l = lambdaAttr(n, 'epilogue');
  const operands = n.operands.map((_, i) => host.operand(n, i));
  return lambdaReadBytes(host, n, l.params, l.body, operands);
}

