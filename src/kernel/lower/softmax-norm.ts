// Plain softmax, layernorm and rmsnorm (lower/lower.ts's Lowering): one workgroup per row, folds from
// lower/reduce.ts.
import { dimConst } from '../../base/dim.js';
import { type Node, floatAttr, intAttr } from '../../graph/ir.js';
import { storageBytes, storageType } from '../ir/storage.js';
import { type Expr, add, bin, call, cast, div, lit, load, mul, rem, select, v } from '../ir/ir.js';
import { KernelBuilder } from '../ir/builder.js';
import { sConst, shapeElements, sMul } from '../plan/to-size.js';
import { bytesOf } from '../analysis/traffic.js';
import { emitRows, rowLoop, workgroupReduce } from './reduce.js';
import { dimExpr, productExpr } from './dims.js';
import type { Lowering } from './lowering.js';
import type { StepCondition } from '../plan/plan.js';

export function emitSoftmax(lw: Lowering, n: Node): void {
  const x = lw.operand(n, 0);
  const axis = intAttr(n, 'axis');
  const shape = x.type.shape;
  const len = shape[axis] ?? dimConst(1);
  const innerDims = shape.slice(axis + 1);
  const rows = shape.filter((_, k) => k !== axis);
  const kb = new KernelBuilder();
  const xSlot = kb.input('x', x.id, x.type.dtype);
  const outSlot = kb.output('out', n.id, n.type.dtype);
  const xt = storageType(x.type.dtype);
  const negInf = lit('f32', -Infinity);
  const elems = shapeElements(shape);
  emitRows(lw, 
    n,
    'softmax',
    kb,
    rows,
    (body, row) => {
      // Element j of the row sits at base + j * stride (stride 1 for the last axis).
      const stride = productExpr(innerDims);
      const base =
        innerDims.length === 0
          ? kb.let(body, 'base', mul(row, dimExpr(len)))
          : kb.let(body, 'base', add(mul(mul(div(row, stride), dimExpr(len)), stride), rem(row, stride)));
      const at = (j: Expr): Expr => add(base, mul(j, stride));
      // Pass 1: online max and rescaled sum per thread (Milakov & Gimelshein, online softmax).
      const mName = kb.fresh('m');
      const lName = kb.fresh('l');
      body.push({ kind: 'var', name: mName, type: 'f32', init: negInf });
      body.push({ kind: 'var', name: lName, type: 'f32', init: lit('f32', 0) });
      const m = v(mName, 'f32');
      const l = v(lName, 'f32');
      body.push(
        rowLoop(lw, kb, dimExpr(len), (loop, j) => {
          const xv = kb.let(loop, 'x', cast('f32', load(xSlot, at(j), xt)));
          const mn = kb.let(loop, 'mn', call('max', [m, xv], 'f32'));
          // A row prefix of -inf keeps l = 0 (exp(-inf - -inf) would be NaN).
          const upd = bin('add', bin('mul', l, call('exp', [bin('sub', m, mn)], 'f32')), call('exp', [bin('sub', xv, mn)], 'f32'));
          loop.push({ kind: 'assign', name: lName, value: select(bin('eq', mn, negInf), lit('f32', 0), upd) });
          loop.push({ kind: 'assign', name: mName, value: mn });
        }),
      );
      const rowMax = kb.let(body, 'row_max', workgroupReduce(lw, kb, body, m, 'max', 'mx'));
      const scaled = kb.let(body, 'l_scaled', select(bin('eq', m, negInf), lit('f32', 0), bin('mul', l, call('exp', [bin('sub', m, rowMax)], 'f32'))));
      const rowSum = kb.let(body, 'row_sum', workgroupReduce(lw, kb, body, scaled, 'sum', 'sm'));
      // Pass 2: write; a fully masked row (max = -inf) gives zeros, not NaN.
      const isMasked = kb.let(body, 'masked', bin('eq', rowMax, negInf));
      body.push(
        rowLoop(lw, kb, dimExpr(len), (loop, j) => {
          const idx = kb.let(loop, 'at', at(j));
          const xv = kb.let(loop, 'x', cast('f32', load(xSlot, idx, xt)));
          const y = select(isMasked, lit('f32', 0), bin('div', call('exp', [bin('sub', xv, rowMax)], 'f32'), rowSum));
          loop.push({ kind: 'store', slot: outSlot, index: idx, value: cast(storageType(n.type.dtype), y) });
        }),
      );
    },
    {
      bytesRead: sMul(sConst(2), bytesOf(elems, x.type.dtype)), // two passes over the row
      bytesWritten: bytesOf(elems, n.type.dtype),
      flops: lw.flops(n),
    },
  );
}

/** layernorm / rmsnorm: one row per workgroup; `when` guards the launch (a matmul path's norm kernel). */
export function emitNorm(lw: Lowering, n: Node, when?: StepCondition): void {
  const isLayer = n.op === 'layernorm';
  const x = lw.operand(n, 0);
  const gamma = lw.operand(n, 1);
  const beta = isLayer ? lw.operand(n, 2) : undefined;
  const eps = floatAttr(n, 'eps');
  const shape = x.type.shape;
  const len = shape[shape.length - 1] ?? dimConst(1);
  const rows = shape.slice(0, -1);
  const kb = new KernelBuilder();
  const xSlot = kb.input('x', x.id, x.type.dtype);
  const gSlot = kb.input('gamma', gamma.id, gamma.type.dtype);
  const bSlot = beta === undefined ? -1 : kb.input('beta', beta.id, beta.type.dtype);
  const outSlot = kb.output('out', n.id, n.type.dtype);
  const xt = storageType(x.type.dtype);
  const elems = shapeElements(shape);
  emitRows(lw, 
    n,
    n.op,
    kb,
    rows,
    (body, row) => {
      const base = kb.let(body, 'base', mul(row, dimExpr(len)));
      const count = kb.let(body, 'count', cast('f32', dimExpr(len)));
      let mean: Expr = lit('f32', 0);
      let shiftOf: Expr | undefined;
      let rstd: Expr;
      if (isLayer) {
        // Shifted sums (by the row's first element) keep E[x^2] - E[x]^2 from cancelling.
        const shift = kb.let(body, 'shift', cast('f32', load(xSlot, base, xt)));
        kb.fresh('s1');
        kb.fresh('s2');
        body.push({ kind: 'var', name: 's1', type: 'f32', init: lit('f32', 0) });
        body.push({ kind: 'var', name: 's2', type: 'f32', init: lit('f32', 0) });
        body.push(
          rowLoop(lw, kb, dimExpr(len), (loop, j) => {
            const d = kb.let(loop, 'd', bin('sub', cast('f32', load(xSlot, add(base, j), xt)), shift));
            loop.push({ kind: 'assign', name: 's1', value: bin('add', v('s1', 'f32'), d) });
            loop.push({ kind: 'assign', name: 's2', value: bin('add', v('s2', 'f32'), bin('mul', d, d)) });
          }),
        );
        const t1 = workgroupReduce(lw, kb, body, v('s1', 'f32'), 'sum', 's1');
        const t2 = workgroupReduce(lw, kb, body, v('s2', 'f32'), 'sum', 's2');
        const md = kb.let(body, 'mean_d', bin('div', t1, count));
        const variance = kb.let(body, 'variance', call('max', [bin('sub', bin('div', t2, count), bin('mul', md, md)), lit('f32', 0)], 'f32'));
        // Centered as (x - shift) - mean_d: x - shift is exact in f32 for x near the shift
        // (Sterbenz) and mean_d is small, so nothing rounds at |mean|. Forming mean = shift +
        // mean_d in f32 rounded it by ulp(|mean|)/2, an error shared by the whole row (1.1e-3 to
        // 1.5e-3 relative at mean 100, std 1; test/webgpu/norm-fold.test.ts).
        shiftOf = shift;
        mean = md;
        rstd = kb.let(body, 'rstd', call('rsqrt', [bin('add', variance, lit('f32', eps))], 'f32'));
      } else {
        kb.fresh('s2');
        body.push({ kind: 'var', name: 's2', type: 'f32', init: lit('f32', 0) });
        body.push(
          rowLoop(lw, kb, dimExpr(len), (loop, j) => {
            const xv = kb.let(loop, 'x', cast('f32', load(xSlot, add(base, j), xt)));
            loop.push({ kind: 'assign', name: 's2', value: bin('add', v('s2', 'f32'), bin('mul', xv, xv)) });
          }),
        );
        const t2 = workgroupReduce(lw, kb, body, v('s2', 'f32'), 'sum', 's2');
        rstd = kb.let(body, 'rstd', call('rsqrt', [bin('add', bin('div', t2, count), lit('f32', eps))], 'f32'));
      }
      body.push(
        rowLoop(lw, kb, dimExpr(len), (loop, j) => {
          const xv = kb.let(loop, 'x', cast('f32', load(xSlot, add(base, j), xt)));
          const gv = cast('f32', load(gSlot, j, storageType(gamma.type.dtype)));
          const centered = isLayer ? bin('sub', shiftOf === undefined ? xv : bin('sub', xv, shiftOf), mean) : xv;
          let y = bin('mul', bin('mul', centered, rstd), gv);
          if (beta !== undefined) y = bin('add', y, cast('f32', load(bSlot, j, storageType(beta.type.dtype))));
          loop.push({ kind: 'store', slot: outSlot, index: add(base, j), value: cast(storageType(n.type.dtype), y) });
        }),
      );
    },
    {
      // x twice (statistics, then output); gamma (and beta) once per row element.
      bytesRead: sMul(elems, sConst(2 * storageBytes(x.type.dtype) + storageBytes(gamma.type.dtype) + (beta === undefined ? 0 : storageBytes(beta.type.dtype)))),
      bytesWritten: bytesOf(elems, n.type.dtype),
      flops: lw.flops(n),
    },
    when,
  );
}
