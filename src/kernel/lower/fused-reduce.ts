// fused_reduce (fuse-reduce): one workgroup per result element, as the plain reductions
// (lower/reduce.ts): the row loop evaluates the `body` lambda at each input element's
// multi-index (the elementwise chain is never stored), one workgroup fold, then the `epilogue`
// lambda on the total (`acc()`) and the store.
import type { Node } from '../../graph/ir.js';
import { boolAttr, dimsAttr, intsAttr, lambdaAttr, strAttr } from '../../graph/ir.js';
import { type Expr, type Stmt, add, bin, builtin, call, cast, lit, mul, u32, v } from '../ir/ir.js';
import { KernelBuilder } from '../ir/builder.js';
import { storageType } from '../ir/storage.js';
import { mapTraffic } from '../analysis/traffic.js';
import { shapeElements } from '../plan/to-size.js';
import { bindOnce } from '../matmul/operands.js';
import { dimExpr, productExpr, strides } from './dims.js';
import { translateLambda } from './fused.js';
import type { Lowering } from './lowering.js';
import { emitRows, rowLoop, workgroupReduce } from './reduce.js';
import { unravel } from './view.js';

export function emitFusedReduce(lw: Lowering, n: Node): void {
  const shape = dimsAttr(n, 'shape');
  const axes = intsAttr(n, 'axes');
  const keepdims = boolAttr(n, 'keepdims');
  const isMax = strAttr(n, 'reduce') === 'max';
  const body = lambdaAttr(n, 'body');
  const ep = lambdaAttr(n, 'epilogue');
  const kept = shape.map((_, k) => k).filter((k) => !axes.includes(k));
  const keptDims = kept.map((k) => shape[k] ?? shape[0]).filter((d) => d !== undefined);
  const redDims = axes.map((k) => shape[k] ?? shape[0]).filter((d) => d !== undefined);
  const st = strides(shape);
  const kb = new KernelBuilder();
  const outSlot = kb.output('out', n.id, n.type.dtype);
  // Both lambdas may read one operand: one binding slot per value.
  const host = bindOnce(lw.fusedHost(kb), kb);
  const operands = n.operands.map((_, i) => lw.operand(n, i));
  // The body is a lambda over `shape` (translateLambda reads the result shape off the node).
  const inner: Node = { ...n, type: { dtype: 'f32', shape } };
  const reads = operands.map((o) => ({ elements: shapeElements(o.type.shape), dtype: o.type.dtype }));
  emitRows(
    lw,
    n,
    n.op,
    kb,
    keptDims,
    (rowBody, row) => {
      const keptIdx = unravel(keptDims, row, dimExpr);
      const acc = kb.fresh('acc');
      rowBody.push({ kind: 'var', name: acc, type: 'f32', init: lit('f32', isMax ? -Infinity : 0) });
      rowBody.push(
        rowLoop(lw, kb, productExpr(redDims), (loop, j) => {
          const redIdx = unravel(redDims, j, dimExpr);
          const at: Expr[] = shape.map((_, k) => (axes.includes(k) ? redIdx[axes.indexOf(k)] : keptIdx[kept.indexOf(k)]) ?? u32(0));
          const flat = kb.let(loop, 'e', at.reduce<Expr>((s, x, k) => add(s, mul(x, st[k] ?? u32(1))), u32(0)));
          const x = kb.let(loop, 'x', cast('f32', translateLambda(host, loop, inner, body.params, body.body, operands, at, flat)));
          loop.push({ kind: 'assign', name: acc, value: isMax ? call('max', [v(acc, 'f32'), x], 'f32') : bin('add', v(acc, 'f32'), x) });
        }),
      );
      const total = workgroupReduce(lw, kb, rowBody, v(acc, 'f32'), isMax ? 'max' : 'sum', 'red');
      // The result's multi-index: the kept axes' (and, with keepdims, 0 on the reduced ones).
      const outIdx: Expr[] = keepdims ? shape.map((_, k) => (axes.includes(k) ? u32(0) : (keptIdx[kept.indexOf(k)] ?? u32(0)))) : keptIdx;
      const store: Stmt[] = [];
      const y = translateLambda(host, store, n, ep.params, ep.body, operands, outIdx, row, total);
      store.push({ kind: 'store', slot: outSlot, index: row, value: cast(storageType(n.type.dtype), y) });
      rowBody.push({ kind: 'if', cond: bin('eq', builtin('local_id', 0), u32(0)), then: store, else: [] });
    },
    mapTraffic(n, reads, lw.flops(n)),
  );
}
