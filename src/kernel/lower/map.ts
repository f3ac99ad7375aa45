// Plain lowerings with one thread per output element (lower/lower.ts's Lowering): elementwise ops with
// broadcasting, constant fills, arange, grid bodies and fused_map (lambdas through lower/fused.ts).
import { type Dim, dimConst, dimEquals } from '../../base/dim.js';
import { type Node, type ScalarExpr, dimAttr, lambdaAttr } from '../../graph/ir.js';
import { foldScalarExpr } from '../../graph/lambda.js';
import { computeType, storageBytes, storageType } from '../ir/storage.js';
import { type Expr, type Stmt, type Traffic, add, bin, builtin, cast, div, load, lt, mul, rem, u32 } from '../ir/ir.js';
import { KernelBuilder } from '../ir/builder.js';
import { sCeilDiv, sConst, shapeElements, sMul } from '../plan/to-size.js';
import type { StepCondition } from '../plan/plan.js';
import { mapTraffic } from '../analysis/traffic.js';
import { fusedMapTraffic, translateLambda } from './fused.js';
import { dimExpr, isOne, productExpr, strides } from './dims.js';
import { lowerScalarOp, operandTypes } from './scalar.js';
import { type ReadExpr, translateScalar } from './lambda.js';
import type { Lowering } from './lowering.js';

/**
 * A kernel computing out[flat] = value(indices) for every element of `n`'s result.
 * `value` gets the output multi-index (u32 per axis, empty when `needsIndex` is false) and flat index.
 */
export function emitMap(
  lw: Lowering,
  n: Node,
  op: string,
  kb: KernelBuilder,
  needsIndex: boolean,
  value: (body: Stmt[], idx: readonly Expr[], flat: Expr) => Expr,
  traffic: Traffic,
  when?: StepCondition,
): void {
  const shape = n.type.shape;
  const wgSize = lw.s.mapWorkgroupSize;
  const body: Stmt[] = [];
  const wg = lw.linearWorkgroup(kb, body);
  const flat = kb.let(body, 'flat', add(mul(wg, u32(wgSize)), builtin('local_id', 0)));
  const inner: Stmt[] = [];
  const idx: Expr[] = [];
  if (needsIndex && shape.length > 0) {
    let rest = flat;
    for (let k = shape.length - 1; k >= 0; k--) {
      const d = dimExpr(shape[k] ?? dimConst(1));
      if (k === 0) idx[0] = kb.let(inner, 'i0', rest);
      else {
        idx[k] = kb.let(inner, `i${k}`, rem(rest, d));
        rest = kb.let(inner, `q${k}`, div(rest, d));
      }
    }
  }
  const val = value(inner, idx, flat);
  const outSlot = kb.output('out', n.id, n.type.dtype);
  inner.push({ kind: 'store', slot: outSlot, index: flat, value: cast(storageType(n.type.dtype), val) });
  body.push({ kind: 'if', cond: lt(flat, productExpr(shape)), then: inner, else: [] });
  const count = sCeilDiv(shapeElements(shape), wgSize);
  lw.finish(n, op, kb, body, [wgSize, 1, 1], lw.linearGrid(count), { kind: 'map', workgroupSize: wgSize }, traffic, when);
}

/** Loads operand `o` (as compute type) at the element of the output multi-index, broadcasting. */
function broadcastLoad(lw: Lowering, kb: KernelBuilder, body: Stmt[], o: Node, role: string, out: readonly Dim[], idx: readonly Expr[], flat: Expr): Expr {
  const st = lw.storage.get(o.id);
  if (st === 'folded') return lw.constLiteral(o);
  const slot = kb.input(role, o.id, o.type.dtype);
  const index = broadcastIndex(lw, o.type.shape, out, idx, flat);
  return kb.let(body, role, cast(computeType(o.type.dtype), load(slot, index, storageType(o.type.dtype))));
}

function broadcastIndex(lw: Lowering, shape: readonly Dim[], out: readonly Dim[], idx: readonly Expr[], flat: Expr): Expr {
  if (shape.length === out.length && shape.every((d, k) => dimEquals(d, out[k] ?? d))) return flat;
  const st = strides(shape);
  const lead = out.length - shape.length;
  let index: Expr = u32(0);
  shape.forEach((d, k) => {
    const od = out[lead + k] ?? d;
    if (isOne(d) && !isOne(od)) return; // broadcast axis
    index = add(index, mul(idx[lead + k] ?? u32(0), st[k] ?? u32(1)));
  });
  return index;
}

export function emitConstFill(lw: Lowering, n: Node): void {
  lw.storage.set(n.id, n.id);
  const kb = new KernelBuilder();
  const value = lw.constLiteral(n);
  const outBytes = sMul(shapeElements(n.type.shape), sConst(storageBytes(n.type.dtype)));
  emitMap(lw, n, 'const', kb, false, () => value, { bytesRead: sConst(0), bytesWritten: outBytes, flops: sConst(0) });
}

export function emitElementwise(lw: Lowering, n: Node, op: string): void {
  const kb = new KernelBuilder();
  const operands = n.operands.map((_, i) => lw.operand(n, i));
  const out = n.type.shape;
  const needsIndex = operands.some(
    (o) => lw.storage.get(o.id) !== 'folded' && !(o.type.shape.length === out.length && o.type.shape.every((d, k) => dimEquals(d, out[k] ?? d))),
  );
  const types = operandTypes(op, operands.map((o) => o.type.dtype), n.type.dtype);
  const roles = operands.length === 1 ? ['x'] : operands.length === 2 ? ['a', 'b'] : ['c', 'a', 'b'];
  const tensorOperands = operands.filter((o) => lw.storage.get(o.id) !== 'folded');
  emitMap(lw, 
    n,
    op,
    kb,
    needsIndex,
    (body, idx, flat) => {
      const args = operands.map((o, i) => cast(types[i] ?? computeType(o.type.dtype), broadcastLoad(lw, kb, body, o, roles[i] ?? `x${i}`, out, idx, flat)));
      return lowerScalarOp(op, args, computeType(n.type.dtype), n.attrs, n.type.dtype);
    },
    mapTraffic(n, tensorOperands.map((o) => ({ elements: shapeElements(out), dtype: o.type.dtype })), lw.flops(n)),
  );
}

export function emitArange(lw: Lowering, n: Node): void {
  const start = dimAttr(n, 'start');
  const kb = new KernelBuilder();
  emitMap(lw, n, 'arange', kb, false, (_b, _i, flat) => bin('add', cast('i32', dimExpr(start)), cast('i32', flat)), mapTraffic(n, [], lw.flops(n)));
}

export function emitGrid(lw: Lowering, n: Node): void {
  const lambda = lambdaAttr(n, 'body');
  const operands = n.operands.map((_, i) => lw.operand(n, i));
  const kb = new KernelBuilder();
  const slots = new Map<number, number>();
  // Bytes read per element: every read of a tensor with a buffer, nested ones included.
  const perElement = foldScalarExpr<number>(lambda.body, (e, inner) => {
    const o = e.kind === 'read' ? operands[e.operand] : undefined;
    const own = o === undefined || lw.storage.get(o.id) === 'folded' ? 0 : storageBytes(o.type.dtype);
    return own + inner.reduce((s, x) => s + x, 0);
  });
  const reads = perElement > 0 ? [sMul(shapeElements(n.type.shape), sConst(perElement))] : [];
  const traffic = mapTraffic(n, [], lw.flops(n));
  const read = (e: ReadExpr, at: (x: ScalarExpr) => Expr): Expr => {
    const o = operands[e.operand];
    if (o === undefined) throw new Error(`internal: grid reads missing operand ${e.operand}`);
    if (lw.storage.get(o.id) === 'folded') return lw.constLiteral(o);
    let slot = slots.get(e.operand);
    if (slot === undefined) {
      slot = kb.input(`t${e.operand}`, o.id, o.type.dtype);
      slots.set(e.operand, slot);
    }
    const st = strides(o.type.shape);
    let index: Expr = u32(0);
    e.indices.forEach((ix, k) => (index = add(index, mul(cast('u32', at(ix)), st[k] ?? u32(1)))));
    return cast(computeType(e.dtype), load(slot, index, storageType(o.type.dtype)));
  };
  emitMap(lw, n, 'grid', kb, true, (body, idx) => kb.let(body, 'val', translateScalar(lambda.body, body, { kb, idx, read })), { ...traffic, bytesRead: reads[0] ?? sConst(0) });
}

/** fused_map: one thread per output element evaluates the lambda (fuse-elementwise); `when`: a path's step (a paired epilogue run separately). */
export function emitFusedMap(lw: Lowering, n: Node, when?: StepCondition): void {
  const kb = new KernelBuilder();
  const host = lw.fusedHost(kb);
  const l = lambdaAttr(n, 'body');
  const operands = n.operands.map((_, i) => lw.operand(n, i));
  emitMap(lw, n, 'fused_map', kb, true, (body, idx, flat) => translateLambda(host, body, n, l.params, l.body, operands, idx, flat), fusedMapTraffic(host, n), when);
}
