// Plain lowerings of the movement ops that copy (lower/lower.ts's Lowering): permute, slice, concat,
// gather, scatter_add; one thread per output element. Reshape and view are not here: they are views, no kernel.
import { dimConst } from '../../base/dim.js';
import { type Node, dimAttr, intAttr, intsAttr } from '../../graph/ir.js';
import { computeType, storageType } from '../ir/storage.js';
import { type Expr, type Stmt, add, bin, call, cast, div, lit, load, lt, mul, rem, sub, u32, v } from '../ir/ir.js';
import { KernelBuilder } from '../ir/builder.js';
import { sMul, shapeElements } from '../plan/to-size.js';
import { mapTraffic } from '../analysis/traffic.js';
import { emitMap } from './map.js';
import { dimExpr, productExpr, strides, zeroOf } from './dims.js';
import type { Lowering } from './lowering.js';

export function emitPermute(lw: Lowering, n: Node): void {
  const x = lw.operand(n, 0);
  const perm = intsAttr(n, 'perm');
  const kb = new KernelBuilder();
  emitMap(lw, 
    n,
    'permute',
    kb,
    true,
    (body, idx) => {
      const st = strides(x.type.shape);
      let index: Expr = u32(0);
      perm.forEach((p, k) => (index = add(index, mul(idx[k] ?? u32(0), st[p] ?? u32(1)))));
      const slot = kb.input('x', x.id, x.type.dtype);
      return kb.let(body, 'x', cast(computeType(x.type.dtype), load(slot, index, storageType(x.type.dtype))));
    },
    mapTraffic(n, [{ elements: shapeElements(n.type.shape), dtype: x.type.dtype }], lw.flops(n)),
  );
}

export function emitSlice(lw: Lowering, n: Node): void {
  const x = lw.operand(n, 0);
  const axis = intAttr(n, 'axis');
  const start = dimAttr(n, 'start');
  const kb = new KernelBuilder();
  emitMap(lw, 
    n,
    'slice',
    kb,
    true,
    (body, idx) => {
      const st = strides(x.type.shape);
      let index: Expr = u32(0);
      idx.forEach((i, k) => (index = add(index, mul(k === axis ? add(i, dimExpr(start)) : i, st[k] ?? u32(1)))));
      const slot = kb.input('x', x.id, x.type.dtype);
      return kb.let(body, 'x', cast(computeType(x.type.dtype), load(slot, index, storageType(x.type.dtype))));
    },
    mapTraffic(n, [{ elements: shapeElements(n.type.shape), dtype: x.type.dtype }], lw.flops(n)),
  );
}

export function emitConcat(lw: Lowering, n: Node): void {
  const axis = intAttr(n, 'axis');
  const operands = n.operands.map((_, i) => lw.operand(n, i));
  const kb = new KernelBuilder();
  const t = computeType(n.type.dtype);
  emitMap(lw, 
    n,
    'concat',
    kb,
    true,
    (body, idx) => {
      const c = idx[axis] ?? u32(0);
      const acc = kb.fresh('val');
      body.push({ kind: 'var', name: acc, type: t, init: zeroOf(t) });
      // if (c < end0) { val = x0[...] } else if (c < end1) { ... } else { val = x_last[...] }
      let offset: Expr = u32(0);
      const branches = operands.map((o, i) => {
        const st = strides(o.type.shape);
        const local = kb.fresh('c');
        let index: Expr = u32(0);
        idx.forEach((ik, k) => (index = add(index, mul(k === axis ? v(local, 'u32') : ik, st[k] ?? u32(1)))));
        const slot = lw.storage.get(o.id) === 'folded' ? -1 : kb.input(`x${i}`, o.id, o.type.dtype);
        const valueExpr = slot < 0 ? lw.constLiteral(o) : cast(t, load(slot, index, storageType(o.type.dtype)));
        const stmts: Stmt[] = [
          { kind: 'let', name: local, type: 'u32', init: sub(c, offset) },
          { kind: 'assign', name: acc, value: valueExpr },
        ];
        const end = add(offset, dimExpr(o.type.shape[axis] ?? dimConst(1)));
        const cond = lt(c, end);
        offset = end;
        return { cond, stmts };
      });
      let chain: Stmt[] = [];
      for (let i = branches.length - 1; i >= 0; i--) {
        const b = branches[i];
        if (b === undefined) continue;
        chain = i === branches.length - 1 ? b.stmts : [{ kind: 'if', cond: b.cond, then: b.stmts, else: chain }];
      }
      body.push(...chain);
      return v(acc, t);
    },
    mapTraffic(n, [{ elements: shapeElements(n.type.shape), dtype: n.type.dtype }], lw.flops(n)),
  );
}

export function emitGather(lw: Lowering, n: Node): void {
  const table = lw.operand(n, 0);
  const ids = lw.operand(n, 1);
  const rest = table.type.shape.slice(1);
  const rows = table.type.shape[0] ?? dimConst(1);
  const kb = new KernelBuilder();
  const outElems = shapeElements(n.type.shape);
  emitMap(lw, 
    n,
    'gather',
    kb,
    false,
    (body, _idx, flat) => {
      const rowLen = productExpr(rest);
      const tableSlot = kb.input('table', table.id, table.type.dtype);
      const j = kb.let(body, 'j', rem(flat, rowLen));
      const p = kb.let(body, 'p', div(flat, rowLen));
      const idsSlot = kb.input('ids', ids.id, ids.type.dtype);
      const id = kb.let(body, 'id', cast('i32', load(idsSlot, p, storageType(ids.type.dtype))));
      // Out-of-range ids are clamped to the table (the interpreter reports them; a kernel cannot).
      const row = kb.let(body, 'row', call('min', [cast('u32', call('max', [id, lit('i32', 0)], 'i32')), sub(dimExpr(rows), u32(1))], 'u32'));
      return kb.let(body, 'x', cast(computeType(table.type.dtype), load(tableSlot, add(mul(row, rowLen), j), storageType(table.type.dtype))));
    },
    mapTraffic(n, [
      { elements: outElems, dtype: table.type.dtype },
      { elements: outElems, dtype: ids.type.dtype },
    ], lw.flops(n)),
  );
}

/**
 * scatter_add (gather's transpose, an embedding's gradient) without atomics: one thread per table
 * element loops over every index and adds the update rows that land on its row, in index order.
 * Deterministic, and float atomics are not in WebGPU; the price is rows x indices work (each
 * thread reads every index), fine for the vocabularies and token counts of the tests.
 */
export function emitScatterAdd(lw: Lowering, n: Node): void {
  const updates = lw.operand(n, 0);
  const ids = lw.operand(n, 1);
  const rest = n.type.shape.slice(1);
  const kb = new KernelBuilder();
  const outElems = shapeElements(n.type.shape);
  const count = shapeElements(ids.type.shape);
  const t = computeType(n.type.dtype);
  emitMap(lw,
    n,
    'scatter_add',
    kb,
    false,
    (body, _idx, flat) => {
      const rowLen = productExpr(rest);
      const j = kb.let(body, 'j', rem(flat, rowLen));
      const row = kb.let(body, 'row', cast('i32', div(flat, rowLen)));
      const updSlot = kb.input('updates', updates.id, updates.type.dtype);
      const idsSlot = kb.input('ids', ids.id, ids.type.dtype);
      const acc = kb.fresh('acc');
      const p = kb.fresh('p');
      body.push({ kind: 'var', name: acc, type: t, init: lit(t, 0) });
      const pv = v(p, 'u32');
      const hit = bin('eq', cast('i32', load(idsSlot, pv, storageType(ids.type.dtype))), row);
      const add1: Stmt = { kind: 'assign', name: acc, value: bin('add', v(acc, t), cast(t, load(updSlot, add(mul(pv, rowLen), j), storageType(updates.type.dtype)))) };
      body.push({ kind: 'for', var: p, start: u32(0), end: productExpr(ids.type.shape), step: u32(1), body: [{ kind: 'if', cond: hit, then: [add1], else: [] }] });
      return v(acc, t);
    },
    mapTraffic(n, [
      { elements: sMul(outElems, count), dtype: ids.type.dtype },
      { elements: shapeElements(updates.type.shape), dtype: updates.type.dtype },
    ], lw.flops(n)),
  );
}
