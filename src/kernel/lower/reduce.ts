// One workgroup per row (lower/lower.ts's Lowering): the workgroup fold (subgroup ops or a tree in
// workgroup memory), the row launch and strided row loop, and the reductions sum, mean, max_reduce
// and logsumexp built on them (also used by lower/softmax-norm.ts).
import { type Dim, dimConst } from '../../base/dim.js';
import { type Node, boolAttr, intsAttr } from '../../graph/ir.js';
import { storageType } from '../ir/storage.js';
import {
  type Expr,
  type KernelSchedule,
  type Stmt,
  type Traffic,
  add,
  arrayLoad,
  bin,
  builtin,
  call,
  cast,
  div,
  lit,
  load,
  lt,
  mul,
  rem,
  select,
  subgroup,
  u32,
  v,
} from '../ir/ir.js';
import { KernelBuilder } from '../ir/builder.js';
import type { StepCondition } from '../plan/plan.js';
import { sConst, shapeElements, sMul } from '../plan/to-size.js';
import { bytesOf } from '../analysis/traffic.js';
import { dimExpr, productExpr, strides } from './dims.js';
import type { Lowering } from './lowering.js';

/**
 * Reduces `acc` (f32, one value per thread) over the workgroup; every thread gets the result.
 * With subgroups: subgroup reduce, one partial per subgroup in workgroup memory, then each
 * thread folds the partials. Without: a shared-memory tree (log2(workgroup) barriers).
 */
export function workgroupReduce(lw: Lowering, kb: KernelBuilder, out: Stmt[], acc: Expr, op: 'sum' | 'max', prefix: string): Expr {
  const wg = lw.s.rowWorkgroupSize;
  // A row workgroup of one subgroup (CPU adapters): the subgroup reduction is the whole fold.
  if (lw.s.useSubgroups && wg === lw.target.subgroupSize) return kb.let(out, `${prefix}_total`, subgroup(op, acc));
  const arr = kb.sharedArray(`${prefix}_part`, 'f32', wg);
  const combine = (a: Expr, b: Expr): Expr => (op === 'sum' ? bin('add', a, b) : call('max', [a, b], 'f32'));
  const lid = builtin('local_id', 0);
  if (lw.s.useSubgroups) {
    const sg = kb.let(out, `${prefix}_sg`, subgroup(op, acc));
    const sgSize = builtin('subgroup_size');
    out.push({ kind: 'if', cond: bin('eq', builtin('subgroup_lane'), u32(0)), then: [{ kind: 'array_store', array: arr, index: div(lid, sgSize), value: sg }], else: [] });
    out.push({ kind: 'barrier' });
    const total = kb.fresh(`${prefix}_total`);
    const s = kb.fresh('p');
    out.push({ kind: 'var', name: total, type: 'f32', init: arrayLoad(arr, u32(0), 'f32') });
    out.push({
      kind: 'for',
      var: s,
      start: u32(1),
      end: div(u32(wg), sgSize),
      step: u32(1),
      body: [{ kind: 'assign', name: total, value: combine(v(total, 'f32'), arrayLoad(arr, v(s, 'u32'), 'f32')) }],
    });
    return v(total, 'f32');
  }
  out.push({ kind: 'array_store', array: arr, index: lid, value: acc });
  out.push({ kind: 'barrier' });
  for (let half = wg / 2; half >= 1; half /= 2) {
    out.push({
      kind: 'if',
      cond: lt(lid, u32(half)),
      then: [{ kind: 'array_store', array: arr, index: lid, value: combine(arrayLoad(arr, lid, 'f32'), arrayLoad(arr, add(lid, u32(half)), 'f32')) }],
      else: [],
    });
    out.push({ kind: 'barrier' });
  }
  return kb.let(out, `${prefix}_total`, arrayLoad(arr, u32(0), 'f32'));
}

/** Launches one workgroup per row (`rows` rows); `body` runs under `if (row < rows)`. */
export function emitRows(
  lw: Lowering,
  n: Node,
  op: string,
  kb: KernelBuilder,
  rows: readonly Dim[],
  build: (body: Stmt[], row: Expr) => void,
  traffic: Traffic,
  when?: StepCondition,
): void {
  const wg = lw.s.rowWorkgroupSize;
  const body: Stmt[] = [];
  const row = lw.linearWorkgroup(kb, body);
  const inner: Stmt[] = [];
  build(inner, row);
  // `row` depends on the workgroup id only, so the barriers inside stay in uniform control flow.
  body.push({ kind: 'if', cond: lt(row, productExpr(rows)), then: inner, else: [] });
  const schedule: KernelSchedule = { kind: 'row', workgroupSize: wg, useSubgroups: lw.s.useSubgroups };
  lw.finish(n, op, kb, body, [wg, 1, 1], lw.linearGrid(shapeElements(rows)), schedule, traffic, when);
}

/** for (var j = local_id.x; j < count; j += workgroupSize) { body(j) } */
export function rowLoop(lw: Lowering, kb: KernelBuilder, count: Expr, build: (body: Stmt[], j: Expr) => void): Stmt {
  const j = kb.fresh('j');
  const body: Stmt[] = [];
  build(body, v(j, 'u32'));
  return { kind: 'for', var: j, start: builtin('local_id', 0), end: count, step: u32(lw.s.rowWorkgroupSize), body };
}

export function emitReduce(lw: Lowering, n: Node): void {
  const x = lw.operand(n, 0);
  const axes = intsAttr(n, 'axes');
  void boolAttr(n, 'keepdims');
  const shape = x.type.shape;
  const kept = shape.map((_, k) => k).filter((k) => !axes.includes(k));
  const keptDims = kept.map((k) => shape[k] ?? dimConst(1));
  const redDims = axes.map((k) => shape[k] ?? dimConst(1));
  const st = strides(shape);
  const isMax = n.op === 'max_reduce';
  const isLse = n.op === 'logsumexp';
  const kb = new KernelBuilder();
  const xSlot = kb.input('x', x.id, x.type.dtype);
  const outSlot = kb.output('out', n.id, n.type.dtype);
  const trailing = axes.every((a, i) => a === shape.length - axes.length + i);
  const xt = storageType(x.type.dtype);
  emitRows(lw, 
    n,
    n.op,
    kb,
    keptDims,
    (body, row) => {
      // base: offset of the row's first element; trailing axes make it row * count.
      let base: Expr;
      if (trailing) base = kb.let(body, 'base', mul(row, productExpr(redDims)));
      else {
        let rest = row;
        let off: Expr = u32(0);
        for (let i = kept.length - 1; i >= 0; i--) {
          const k = kept[i] ?? 0;
          const d = dimExpr(shape[k] ?? dimConst(1));
          const ik = i === 0 ? rest : kb.let(body, `o${k}`, rem(rest, d));
          if (i > 0) rest = kb.let(body, `r${k}`, div(rest, d));
          off = add(off, mul(ik, st[k] ?? u32(1)));
        }
        base = kb.let(body, 'base', off);
      }
      /** Element j of the row (as f32): offset j along the reduced axes. */
      const xAt = (loop: Stmt[], j: Expr): Expr => {
        let offset: Expr;
        if (trailing) offset = j;
        else {
          let rest = j;
          let off: Expr = u32(0);
          for (let i = axes.length - 1; i >= 0; i--) {
            const k = axes[i] ?? 0;
            const d = dimExpr(shape[k] ?? dimConst(1));
            const ik = i === 0 ? rest : kb.let(loop, `a${k}`, rem(rest, d));
            if (i > 0) rest = kb.let(loop, `b${k}`, div(rest, d));
            off = add(off, mul(ik, st[k] ?? u32(1)));
          }
          offset = off;
        }
        return kb.let(loop, 'x', cast('f32', load(xSlot, add(base, offset), xt)));
      };
      const acc = kb.fresh('acc');
      body.push({ kind: 'var', name: acc, type: 'f32', init: lit('f32', isMax || isLse ? -Infinity : 0) });
      body.push(
        rowLoop(lw, kb, productExpr(redDims), (loop, j) => {
          const xv = xAt(loop, j);
          loop.push({ kind: 'assign', name: acc, value: isMax || isLse ? call('max', [v(acc, 'f32'), xv], 'f32') : bin('add', v(acc, 'f32'), xv) });
        }),
      );
      if (isLse) {
        // logsumexp: m = the row max, then m + log(sum exp(x - m)). An element equal to m adds
        // exactly 1, so a row of only -inf gives -inf + log(n) = -inf (exp(-inf - -inf) would be
        // NaN) and a +inf element gives +inf.
        const m = workgroupReduce(lw, kb, body, v(acc, 'f32'), 'max', 'red');
        const mRow = kb.let(body, 'm_row', m);
        const sum = kb.fresh('sum');
        body.push({ kind: 'var', name: sum, type: 'f32', init: lit('f32', 0) });
        body.push(
          rowLoop(lw, kb, productExpr(redDims), (loop, j) => {
            const xv = xAt(loop, j);
            const e = select(bin('eq', xv, mRow), lit('f32', 1), call('exp', [bin('sub', xv, mRow)], 'f32'));
            loop.push({ kind: 'assign', name: sum, value: bin('add', v(sum, 'f32'), e) });
          }),
        );
        const total = workgroupReduce(lw, kb, body, v(sum, 'f32'), 'sum', 'lse');
        body.push({
          kind: 'if',
          cond: bin('eq', builtin('local_id', 0), u32(0)),
          then: [{ kind: 'store', slot: outSlot, index: row, value: cast(storageType(n.type.dtype), bin('add', mRow, call('log', [total], 'f32'))) }],
          else: [],
        });
        return;
      }
      let total = workgroupReduce(lw, kb, body, v(acc, 'f32'), isMax ? 'max' : 'sum', 'red');
      if (n.op === 'mean') total = bin('div', total, cast('f32', productExpr(redDims)));
      body.push({
        kind: 'if',
        cond: bin('eq', builtin('local_id', 0), u32(0)),
        then: [{ kind: 'store', slot: outSlot, index: row, value: cast(storageType(n.type.dtype), total) }],
        else: [],
      });
    },
    {
      // logsumexp reads its row twice (max, then the sum of exponentials).
      bytesRead: isLse ? sMul(bytesOf(shapeElements(shape), x.type.dtype), sConst(2)) : bytesOf(shapeElements(shape), x.type.dtype),
      bytesWritten: bytesOf(shapeElements(n.type.shape), n.type.dtype),
      flops: lw.flops(n),
    },
  );
}
