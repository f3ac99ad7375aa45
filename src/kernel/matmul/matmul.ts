// The tiled matmul and fused_matmul (lower/lower.ts's Lowering): schedule tiles in workgroup memory,
// batch broadcasting, a normalization prologue (matmul/norm-prologue.ts), the fused epilogue, and the
// tensor-core body (matmul/mma.ts) where the operands qualify.
import { type Dim, dimConst, dimConstValue, dimMul } from '../../base/dim.js';
import { type Graph, type Node, lambdaAttr } from '../../graph/ir.js';
import type { DType } from '../../graph/types.js';
import { storageBytes, storageType } from '../ir/storage.js';
import {
  type Expr,
  type MatrixInput,
  type MmaBLayout,
  type Stmt,
  type Traffic,
  add,
  and,
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
  u32,
  v,
} from '../ir/ir.js';
import { KernelBuilder } from '../ir/builder.js';
import type { SizeExpr, StepCondition } from '../plan/plan.js';
import { type MatmulSchedule, ScheduleError, decodeScheduleFor, scheduleShapeKey, specializeMatmul } from '../schedule/schedule.js';
import { type LaneNorm, emitLaneMatmul } from './lanes.js';
import { emitGemv } from './gemv.js';
import { emitNorm } from '../lower/softmax-norm.js';
import { emitStreamPartials, emitStreamReduce } from './stream.js';
import { printType } from '../../graph/types.js';
import { dimToSize, sCeilDiv, sConst, shapeElements, sMinConst, sMul } from '../plan/to-size.js';
import { type FusedHost, epilogueReadBytes, translateLambda, unravelFlat } from '../lower/fused.js';
import { elementOffset, hasVectorRuns, unitStrideAxis, unravel } from '../lower/view.js';
import { normPrologueOf } from '../../ops/fused.js';
import { normFold } from './norm-prologue.js';
import { emitMmaMatmul } from './mma.js';
import { dimExpr, isOne, strides } from '../lower/dims.js';
import type { Lowering } from '../lower/lower.js';

/**
 * A matmul node's kernels: one on its schedule; with a decode schedule (Schedule.decodeMatmul)
 * the K-split kernel where M (rows, batch folded in) is at most its maxRows, guarded by `when`
 * where M is symbolic, so one plan serves prefill and one-token decode.
 */
export function emitMatmul(lw: Lowering, n: Node): void {
  const main = specializeMatmul(lw.g, n, lw.s.byShape?.matmul?.[scheduleShapeKey(lw.g, n)] ?? lw.s.matmul);
  const decode = lw.s.decodeMatmul;
  if (decode === undefined) return emitMatmulWith(lw, n, main);
  const rows = dimToSize(matmulRows(n, lw.operand(n, 0), lw.operand(n, 1)));
  const small = specializeMatmul(lw.g, n, decodeScheduleFor(lw.g, n, decode));
  if (rows.kind === 'const') return emitMatmulWith(lw, n, rows.value <= decode.maxRows ? small : main);
  emitMatmulWith(lw, n, small, { size: rows, op: '<=', value: decode.maxRows });
  emitMatmulWith(lw, n, main, { size: rows, op: '>', value: decode.maxRows });
}

/** Rows of the product: M, times the batch when the batch folds into M (a 2-D right operand). */
function matmulRows(n: Node, a: Node, b: Node): Dim {
  const out = n.type.shape;
  const rank = out.length;
  const foldBatch = b.type.shape.length === 2 && a.type.shape.length === rank;
  return foldBatch ? out.slice(0, -1).reduce((p, d) => dimMul(p, d), dimConst(1)) : (out[rank - 2] ?? dimConst(1));
}

function emitMatmulWith(lw: Lowering, n: Node, ms: MatmulSchedule, when?: StepCondition): void {
  const normOf = n.op === 'fused_matmul' ? normPrologueOf(n.attrs) : undefined;
  if (normOf !== undefined && ms.normFold === 'separate') return emitNormThenMatmul(lw, n, normOf, ms, when);
  if (ms.kSplit === true) {
    if (normOf !== undefined) throw new ScheduleError('matmul.normFold', `%${n.id}: kSplit runs a folded norm only as a separate kernel (normFold 'separate')`);
    return emitStreamMatmul(lw, n, ms, when);
  }
  const a = lw.operand(n, 0);
  const b = lw.operand(n, 1);
  const { tileRows: TM, tileCols: TN, tileK: TK, threadRows: RM, threadCols: RN } = ms;
  const thx = TN / RN;
  const thy = TM / RM;
  const threads = thx * thy;
  const out = n.type.shape;
  const rank = out.length;
  // [..., M, K] @ [K, N]: the batch folds into M (one big matrix, B read once per row tile).
  const foldBatch = b.type.shape.length === 2 && a.type.shape.length === rank;
  const M = matmulRows(n, a, b);
  const N = out[rank - 1] ?? dimConst(1);
  const K = a.type.shape[a.type.shape.length - 1] ?? dimConst(1);
  const batch = foldBatch ? [] : out.slice(0, -2);
  const kb = new KernelBuilder();
  // Subgroup-broadcast schedule (matmul/lanes.ts): validated against this node first.
  const lanes = ms.laneBroadcast === true || ms.kLanes === true ? laneLayout(lw, n, a, b, ms) : undefined;
  const aSlot = lanes?.aVector === 4 ? kb.inputVector('a', a.id, a.type.dtype, 4) : kb.input('a', a.id, a.type.dtype);
  const bSlot = lanes?.bVector === 4 ? kb.inputVector('b', b.id, b.type.dtype, 4) : kb.input('b', b.id, b.type.dtype);
  const oSlot = kb.output('out', n.id, n.type.dtype);
  // Direct schedule (CPU targets): no workgroup tiles; a norm fold still needs them.
  const isDirect = ms.isDirect === true && !(n.op === 'fused_matmul' && normPrologueOf(n.attrs) !== undefined);
  // Tensor cores (CUDA sm_80+): f16/bf16 operands whose rows are contiguous (mmaOperands).
  const mmaInput = lw.s.mmaMatmul === undefined ? undefined : mmaOperands(lw.g, n, a, b);
  const staged = !isDirect && mmaInput === undefined && lanes === undefined;
  const aTile = staged ? kb.sharedArray('a_tile', 'f32', TM * TK) : '';
  const bTile = staged ? kb.sharedArray('b_tile', 'f32', TK * TN) : '';
  const body: Stmt[] = [];
  const Me = dimExpr(M);
  const Ne = dimExpr(N);
  const Ke = dimExpr(K);
  // Batch offsets: the output batch index (workgroup z) unravelled, size-1 batch dims broadcast.
  const bz = builtin('workgroup_id', 2);
  const batchIdx: Expr[] = [];
  let rest: Expr = bz;
  for (let k = batch.length - 1; k >= 0; k--) {
    const d = dimExpr(batch[k] ?? dimConst(1));
    if (k === 0) batchIdx[0] = batch.length === 1 ? bz : kb.let(body, 'z0', rest);
    else {
      batchIdx[k] = kb.let(body, `z${k}`, rem(rest, d));
      rest = kb.let(body, `zq${k}`, div(rest, d));
    }
  }
  const matrixOffset = (shape: readonly Dim[], matrix: Expr): Expr => {
    const bshape = foldBatch ? [] : shape.slice(0, -2);
    const lead = batch.length - bshape.length;
    const st = strides(bshape);
    let off: Expr = u32(0);
    bshape.forEach((d, k) => {
      if (isOne(d)) return;
      off = add(off, mul(batchIdx[lead + k] ?? u32(0), st[k] ?? u32(1)));
    });
    return mul(off, matrix);
  };
  const aOff = kb.let(body, 'a_off', matrixOffset(a.type.shape, mul(Me, Ke)));
  const bOff = kb.let(body, 'b_off', matrixOffset(b.type.shape, mul(Ke, Ne)));
  const oOff = kb.let(body, 'out_off', mul(bz, mul(Me, Ne)));
  // fused_matmul: the epilogue lambda (lower/fused.ts) runs on the accumulator before the store.
  // The mma and lane epilogues are emitted once per accumulator column (unrolled): operands bound once.
  const host = mmaInput !== undefined || lanes !== undefined ? bindOnce(lw.fusedHost(kb), kb) : lw.fusedHost(kb);
  const ep = n.op === 'fused_matmul' ? lambdaAttr(n, 'epilogue') : undefined;
  const epOperands = n.operands.map((_, i) => lw.operand(n, i));
  const epilogueStore = (index: Expr, acc: Expr): Stmt[] => {
    if (ep === undefined) return [{ kind: 'store', slot: oSlot, index, value: cast(storageType(n.type.dtype), acc) }];
    const stmts: Stmt[] = [];
    const flat = kb.let(stmts, 'o', index);
    const idx = unravelFlat(host, stmts, out, flat);
    const value = translateLambda(host, stmts, n, ep.params, ep.body, epOperands, idx, flat, acc);
    stmts.push({ kind: 'store', slot: oSlot, index: flat, value: cast(storageType(n.type.dtype), value) });
    return stmts;
  };
  // An operand read through a view (fold-views): its multi-index from the tile row and column,
  // then the address in the source buffer from the view's map.
  const viewAddress = (o: Node, isA: boolean): ((grow: Expr, gcol: Expr) => Expr) | undefined => {
    if (o.op !== 'view') return undefined;
    return (grow, gcol) => {
      const shape = o.type.shape;
      let lead: Expr[];
      if (foldBatch) lead = isA ? unravel(shape.slice(0, -1), grow, dimExpr) : [grow];
      else {
        const bshape = shape.slice(0, -2);
        const off = batch.length - bshape.length;
        lead = [...bshape.map((d, k) => (isOne(d) ? u32(0) : (batchIdx[off + k] ?? u32(0)))), grow];
      }
      return elementOffset(lw.g, o, [...lead, gcol], dimExpr);
    };
  };
  const Ms = dimToSize(M);
  const Ns = dimToSize(N);
  const Ks = dimToSize(K);
  const batchS = shapeElements(batch);
  const trafficFor = (tileRows: number, tileCols: number, extra: readonly SizeExpr[]): Traffic => ({
    // A is re-read once per column tile, B once per row tile (bounds-checked loads only).
    bytesRead: sAddAll([
      sMul(batchS, Ms, Ks, sCeilDiv(Ns, tileCols), sConst(storageBytes(a.type.dtype))),
      sMul(batchS, Ks, Ns, sCeilDiv(Ms, tileRows), sConst(storageBytes(b.type.dtype))),
      ...(ep === undefined ? [] : [epilogueReadBytes(host, n)]),
      ...extra,
    ]),
    bytesWritten: sMul(batchS, Ms, Ns, sConst(storageBytes(n.type.dtype))),
    flops: lw.flops(n),
  });
  if (lanes !== undefined) {
    const normAttrs = n.op === 'fused_matmul' ? normPrologueOf(n.attrs) : undefined;
    const param = (i: number): Node => lw.operand(n, n.operands.length - (normAttrs?.params ?? 0) + i);
    const aView = viewAddress(a, true);
    const bView = viewAddress(b, false);
    const norm: LaneNorm | undefined =
      normAttrs === undefined
        ? undefined
        : {
            op: normAttrs.op,
            eps: normAttrs.eps,
            type: storageType(param(0).type.dtype),
            vector: lanes.normVector,
            gammaSlot: lanes.normVector === 4 ? kb.inputVector('gamma', param(0).id, param(0).type.dtype, 4) : kb.input('gamma', param(0).id, param(0).type.dtype),
            ...(normAttrs.op === 'layernorm'
              ? { betaSlot: lanes.normVector === 4 ? kb.inputVector('beta', param(1).id, param(1).type.dtype, 4) : kb.input('beta', param(1).id, param(1).type.dtype) }
              : {}),
          };
    (ms.kLanes === true ? emitGemv : emitLaneMatmul)(
      {
        kb,
        schedule: ms,
        lanes: lanes.lanes,
        aSlot,
        bSlot,
        aType: storageType(a.type.dtype),
        bType: storageType(b.type.dtype),
        aVector: lanes.aVector,
        bVector: lanes.bVector,
        M: Me,
        N: Ne,
        K: Ke,
        aAddr: aView ?? ((row, k) => add(aOff, add(mul(row, Ke), k))),
        bAddr: bView ?? ((k, col) => add(bOff, add(mul(k, Ne), col))),
        bLayout: lanes.bLayout,
        ...(norm !== undefined ? { norm } : {}),
        outIndex: (row, col) => add(oOff, add(mul(row, Ne), col)),
        store: epilogueStore,
      },
      body,
    );
    const grid: readonly [SizeExpr, SizeExpr, SizeExpr] = ms.rowsFirst === true && ms.kLanes !== true ? [sCeilDiv(Ms, TM), sCeilDiv(Ns, TN), batchS] : [sCeilDiv(Ns, TN), sCeilDiv(Ms, TM), batchS];
    // The norm reads gamma (and beta) K floats per workgroup; layernorm's mean pass reads A once more.
    const paramBytes =
      norm === undefined
        ? []
        : [
            sMul(batchS, sCeilDiv(Ms, TM), sCeilDiv(Ns, TN), Ks, sConst(storageBytes(param(0).type.dtype) * (norm.betaSlot === undefined ? 1 : 2))),
            // layernorm's mean pass reads A once more (the K-split kernel: twice, mean then variance)
            ...(norm.op === 'layernorm' ? [sMul(batchS, Ms, Ks, sCeilDiv(Ns, TN), sConst(storageBytes(a.type.dtype) * (ms.kLanes === true ? 2 : 1)))] : []),
            ...(norm.op === 'rmsnorm' && ms.kLanes === true ? [sMul(batchS, Ms, Ks, sCeilDiv(Ns, TN), sConst(storageBytes(a.type.dtype)))] : []),
          ];
    const schedule = { kind: 'tiled_matmul', ...ms, aVector: lanes.aVector, bVector: lanes.bVector } as const;
    lw.finish(n, n.op, kb, body, [lanes.lanes, 1, 1], grid, schedule, trafficFor(TM, TN, paramBytes), when);
    return;
  }
  if (mmaInput !== undefined && lw.s.mmaMatmul !== undefined) {
    const mm = lw.s.mmaMatmul;
    const aView = viewAddress(a, true);
    const bView = viewAddress(b, false);
    const r = emitMmaMatmul(
      {
        kb,
        schedule: mm,
        input: mmaInput.input,
        aSlot,
        bSlot,
        M: Me,
        N: Ne,
        K: Ke,
        aAddr: aView ?? ((row, k) => add(aOff, add(mul(row, Ke), k))),
        bAddr: bView ?? ((k, col) => add(bOff, add(mul(k, Ne), col))),
        bLayout: mmaInput.bLayout,
        store: epilogueStore,
        outIndex: (row, col) => add(oOff, add(mul(row, Ne), col)),
      },
      body,
    );
    const grid: readonly [SizeExpr, SizeExpr, SizeExpr] = [sCeilDiv(Ns, mm.tileCols), sCeilDiv(Ms, mm.tileRows), batchS];
    lw.finish(n, n.op, kb, body, [r.threads, 1, 1], grid, r.schedule, trafficFor(mm.tileRows, mm.tileCols, []), when);
    return;
  }
  const row0 = kb.let(body, 'row0', mul(builtin('workgroup_id', 1), u32(TM)));
  const col0 = kb.let(body, 'col0', mul(builtin('workgroup_id', 0), u32(TN)));
  const tx = builtin('local_id', 0);
  const ty = builtin('local_id', 1);
  const tid = builtin('local_index');
  const accName = kb.fresh('acc');
  body.push({ kind: 'private_array', name: accName, type: 'f32', length: RM * RN, init: lit('f32', 0) });
  // Stage one tile: for (e = tid; e < rows*cols; e += threads) tile[e] = in-bounds ? src : 0.
  const stage = (tile: string, cols: number, total: number, slot: number, dtype: DType, gr: (r: Expr) => Expr, gc: (c: Expr) => Expr, R: Expr, C: Expr, off: Expr, ld: Expr, addr?: (grow: Expr, gcol: Expr) => Expr): Stmt => {
    const e = kb.fresh('e');
    const lb: Stmt[] = [];
    const r = kb.let(lb, 'r', div(v(e, 'u32'), u32(cols)));
    const c = kb.let(lb, 'c', rem(v(e, 'u32'), u32(cols)));
    const grow = kb.let(lb, 'gr', gr(r));
    const gcol = kb.let(lb, 'gc', gc(c));
    const val = kb.fresh('t');
    lb.push({ kind: 'var', name: val, type: 'f32', init: lit('f32', 0) });
    lb.push({
      kind: 'if',
      cond: and(lt(grow, R), lt(gcol, C)),
      then: [{ kind: 'assign', name: val, value: cast('f32', load(slot, addr !== undefined ? addr(grow, gcol) : add(off, add(mul(grow, ld), gcol)), storageType(dtype))) }],
      else: [],
    });
    lb.push({ kind: 'array_store', array: tile, index: v(e, 'u32'), value: v(val, 'f32') });
    return { kind: 'for', var: e, start: tid, end: u32(total), step: u32(threads), body: lb };
  };
  // Direct K loop: per k, the thread's RN B values, then per row one A value and RN multiply-adds.
  // Indices past M or N are clamped (those outputs are never stored), so no branch per load.
  const directKLoop = (): Stmt => {
    const k = kb.fresh('k');
    const kvar = v(k, 'u32');
    const lb: Stmt[] = [];
    const bVal = kb.fresh('b_val');
    lb.push({ kind: 'private_array', name: bVal, type: 'f32', length: RN, init: lit('f32', 0) });
    const jb = kb.fresh('jj');
    const gcol = call('min', [add(col0, add(tx, mul(v(jb, 'u32'), u32(thx)))), bin('sub', Ne, u32(1))], 'u32');
    const bAddr = viewAddress(b, false);
    lb.push({ kind: 'for', var: jb, start: u32(0), end: u32(RN), step: u32(1), body: [{ kind: 'array_store', array: bVal, index: v(jb, 'u32'), value: cast('f32', load(bSlot, bAddr !== undefined ? bAddr(kvar, gcol) : add(bOff, add(mul(kvar, Ne), gcol)), storageType(b.type.dtype))) }] });
    const ia = kb.fresh('i');
    const iav = v(ia, 'u32');
    const ja = kb.fresh('jj');
    const jav = v(ja, 'u32');
    const grow = call('min', [add(row0, add(ty, mul(iav, u32(thy)))), bin('sub', Me, u32(1))], 'u32');
    const aAddr = viewAddress(a, true);
    const aVal = kb.fresh('a_val');
    const at = add(mul(iav, u32(RN)), jav);
    lb.push({
      kind: 'for',
      var: ia,
      start: u32(0),
      end: u32(RM),
      step: u32(1),
      body: [
        { kind: 'let', name: aVal, type: 'f32', init: cast('f32', load(aSlot, aAddr !== undefined ? aAddr(grow, kvar) : add(aOff, add(mul(grow, Ke), kvar)), storageType(a.type.dtype))) },
        { kind: 'for', var: ja, start: u32(0), end: u32(RN), step: u32(1), body: [{ kind: 'array_store', array: accName, index: at, value: bin('add', arrayLoad(accName, at, 'f32'), bin('mul', v(aVal, 'f32'), arrayLoad(bVal, jav, 'f32'))) }] },
      ],
    });
    return { kind: 'for', var: k, start: u32(0), end: Ke, step: u32(1), body: lb };
  };
  const k0 = kb.fresh('k0');
  const kv = v(k0, 'u32');
  // fused_matmul with a norm (fuse-norm): statistics and gamma/beta @ W ride the K loop.
  const norm = n.op === 'fused_matmul' ? normPrologueOf(n.attrs) : undefined;
  const fold = norm === undefined ? undefined : normFold({ kb, body, g: lw.g, n, norm, k0: kv, K: Ke, tile: { TM, TN, TK, RM, RN, thx, thy }, aTile, bTile, acc: accName });
  const kk = kb.fresh('kk');
  const kkv = v(kk, 'u32');
  const iName = kb.fresh('i');
  const jName = kb.fresh('jj');
  const iv = v(iName, 'u32');
  const jv = v(jName, 'u32');
  const accIdx = add(mul(iv, u32(RN)), jv);
  const av = kb.fresh('a_val');
  const inner: Stmt = {
    kind: 'for',
    var: kk,
    start: u32(0),
    end: u32(TK),
    step: u32(1),
    body: [
      {
        kind: 'for',
        var: iName,
        start: u32(0),
        end: u32(RM),
        step: u32(1),
        body: [
          { kind: 'let', name: av, type: 'f32', init: arrayLoad(aTile, add(mul(add(ty, mul(iv, u32(thy))), u32(TK)), kkv), 'f32') },
          {
            kind: 'for',
            var: jName,
            start: u32(0),
            end: u32(RN),
            step: u32(1),
            body: [
              {
                kind: 'array_store',
                array: accName,
                index: accIdx,
                value: bin('add', arrayLoad(accName, accIdx, 'f32'), bin('mul', v(av, 'f32'), arrayLoad(bTile, add(mul(kkv, u32(TN)), add(tx, mul(jv, u32(thx)))), 'f32'))),
              },
            ],
          },
        ],
      },
    ],
  };
  if (isDirect) body.push(directKLoop());
  else body.push({
    kind: 'for',
    var: k0,
    start: u32(0),
    end: Ke,
    step: u32(TK),
    body: [
      stage(aTile, TK, TM * TK, aSlot, a.type.dtype, (r) => add(row0, r), (c) => add(kv, c), Me, Ke, aOff, Ke, viewAddress(a, true)),
      stage(bTile, TN, TK * TN, bSlot, b.type.dtype, (r) => add(kv, r), (c) => add(col0, c), Ke, Ne, bOff, Ne, viewAddress(b, false)),
      ...(fold?.stage ?? []),
      { kind: 'barrier' },
      ...(fold?.inner ?? [inner]),
      { kind: 'barrier' },
    ],
  });
  // Write back the thread's RM x RN outputs (strided by the thread grid, so stores coalesce).
  const wi = kb.fresh('i');
  const wj = kb.fresh('jj');
  const wiv = v(wi, 'u32');
  const wjv = v(wj, 'u32');
  const wb: Stmt[] = [];
  const orow = kb.let(wb, 'orow', add(row0, add(ty, mul(wiv, u32(thy)))));
  const ocol = kb.let(wb, 'ocol', add(col0, add(tx, mul(wjv, u32(thx)))));
  wb.push({
    kind: 'if',
    cond: and(lt(orow, Me), lt(ocol, Ne)),
    then: ((): Stmt[] => {
      const pre: Stmt[] = [];
      const value = fold === undefined ? arrayLoad(accName, add(mul(wiv, u32(RN)), wjv), 'f32') : fold.finish(pre, wiv, wjv);
      return [...pre, ...epilogueStore(add(oOff, add(mul(orow, Ne), ocol)), value)];
    })(),
    else: [],
  });
  body.push({
    kind: 'for',
    var: wi,
    start: u32(0),
    end: u32(RM),
    step: u32(1),
    body: [{ kind: 'for', var: wj, start: u32(0), end: u32(RN), step: u32(1), body: wb }],
  });
  // Norm fold: gamma (and beta) once per K tile per workgroup; A is not read again.
  const traffic = trafficFor(TM, TN, fold === undefined ? [] : [fold.paramBytes(sMul(batchS, sCeilDiv(Ms, TM), sCeilDiv(Ns, TN)), Ks)]);
  const grid: readonly [SizeExpr, SizeExpr, SizeExpr] = [sCeilDiv(Ns, TN), sCeilDiv(Ms, TM), batchS];
  lw.finish(n, n.op, kb, body, [thx, thy, 1], grid, { kind: 'tiled_matmul', ...ms }, traffic, when);
}

/**
 * MatmulSchedule.normFold 'separate': the folded norm runs as its own row kernel into a temp (the
 * normalized A, M x K), then the matmul (with the epilogue) reads it. Same result as the unfused
 * norm + fused matmul; chosen where the inline fold costs more ALU than the norm kernel's memory
 * round trip (a CPU adapter's prefill; docs/performance.md). A must be a plain buffer (the norm kernel
 * reads rows contiguously).
 */
function emitNormThenMatmul(lw: Lowering, n: Node, norm: { readonly op: 'layernorm' | 'rmsnorm'; readonly params: number; readonly eps: number }, ms: MatmulSchedule, when: StepCondition | undefined): void {
  const a = lw.operand(n, 0);
  if (a.op === 'view') throw new ScheduleError('matmul.normFold', `%${n.id}: 'separate' needs A as a plain buffer, not a view`);
  const params = n.operands.slice(n.operands.length - norm.params);
  // Matmuls sharing the folded norm (Llama's q, k and v projections, gate and up) share its
  // kernel and temp: one norm kernel per (input, parameters, eps, path), not one per matmul.
  const key = JSON.stringify([norm.op, a.id, params, norm.eps, when ?? null]);
  let normNode = lw.sharedTemps.get(key);
  if (normNode === undefined) {
    // A decode path's temp holds at most its `when` bound of rows (see emitStreamMatmul).
    const rowsS = shapeElements(a.type.shape.slice(0, -1));
    const cap = when !== undefined && when.op === '<=' && when.and === undefined ? sMinConst(rowsS, when.value) : rowsS;
    normNode = lw.tempNode(
      { op: norm.op, operands: [a.id, ...params], attrs: { eps: { kind: 'float', value: norm.eps } }, type: a.type, loc: n.loc, ...(n.from !== undefined ? { from: n.from } : {}), ...(n.scope !== undefined ? { scope: n.scope } : {}) },
      sMul(cap, dimToSize(a.type.shape[a.type.shape.length - 1] ?? dimConst(1))),
    );
    lw.sharedTemps.set(key, normNode);
    emitNorm(lw, normNode, when);
  }
  const { norm: _norm, eps: _eps, ...attrs } = n.attrs;
  const product: Node = { ...n, operands: [normNode.id, ...n.operands.slice(1, n.operands.length - norm.params)], attrs };
  const { normFold: _fold, ...plain } = ms;
  emitMatmulWith(lw, product, plain, when);
}

/**
 * Checks a laneBroadcast schedule against the node and the target (never silently changed):
 * the lane count, tile shape, and each vector width against the operands' layouts. Returns B's
 * loop layout and the vector widths; throws ScheduleError naming the field otherwise.
 */
function laneLayout(lw: Lowering, n: Node, a: Node, b: Node, ms: MatmulSchedule): { readonly lanes: number; readonly aVector: 1 | 4; readonly bVector: 1 | 4; readonly normVector: 1 | 4; readonly bLayout: 'k_by_n' | 'n_by_k' } {
  const what = `%${n.id} (${n.op} ${printType(a.type)} x ${printType(b.type)})`;
  const L = lw.target.subgroupSize;
  if (L === 0 || !lw.s.useSubgroups) throw new ScheduleError('matmul.laneBroadcast', `${what}: the target has no subgroups`);
  if (ms.laneBroadcast === true && ms.kLanes === true) throw new ScheduleError('matmul.kLanes', `${what}: laneBroadcast and kLanes exclude each other`);
  if (ms.kLanes === true) {
    if (ms.threadRows !== ms.tileRows || ms.threadCols !== ms.tileCols || ms.tileRows < 1 || ms.tileCols < 1) throw new ScheduleError('matmul.threadRows', `${what}: kLanes needs threadRows = tileRows and threadCols = tileCols (every lane holds the whole tile), got ${ms.tileRows}x${ms.tileCols} tiles of ${ms.threadRows}x${ms.threadCols}`);
    const Kc = dimConstValue(a.type.shape[a.type.shape.length - 1] ?? dimConst(1));
    if (ms.tileK !== 1 && (Kc === undefined || Kc % ms.tileK !== 0)) throw new ScheduleError('matmul.tileK', `${what}: kLanes needs tileK to divide K (or be 1), got tileK ${ms.tileK}`);
  } else {
    if (ms.threadRows !== ms.tileRows || ms.tileCols !== L * ms.threadCols) throw new ScheduleError('matmul.threadRows', `${what}: laneBroadcast needs threadRows = tileRows and tileCols = ${L} (subgroup size) x threadCols, got ${ms.tileRows}x${ms.tileCols} tiles of ${ms.threadRows}x${ms.threadCols}`);
    if (ms.tileRows % L !== 0 || ms.tileRows <= 0) throw new ScheduleError('matmul.tileRows', `${what}: laneBroadcast needs tileRows a positive multiple of the subgroup size ${L}, got ${ms.tileRows}`);
  }
  if (!Number.isInteger(ms.tileK) || ms.tileK < 1) throw new ScheduleError('matmul.tileK', `${what}: tileK must be a positive integer, got ${ms.tileK}`);
  const aRank = a.type.shape.length;
  const bRank = b.type.shape.length;
  const K = dimConstValue(a.type.shape[aRank - 1] ?? dimConst(1));
  const unitB = unitStrideAxis(lw.g, b);
  const bLayout = unitB === bRank - 2 ? 'n_by_k' : 'k_by_n';
  const wholeSteps = K !== undefined && K % ms.tileK === 0;
  const aVector = ms.aVector ?? 1;
  const bVector = ms.bVector ?? 1;
  if (aVector === 4 && !(ms.tileK % 4 === 0 && wholeSteps && hasVectorRuns(lw.g, a, aRank - 1, 4))) throw new ScheduleError('matmul.aVector', `${what}: vector loads of A need tileK a multiple of 4 dividing K and A contiguous along K in runs of 4`);
  if (bVector === 4) {
    const ok = bLayout === 'k_by_n' ? ms.threadCols % 4 === 0 && wholeSteps && hasVectorRuns(lw.g, b, bRank - 1, 4) : ms.tileK % 4 === 0 && wholeSteps && hasVectorRuns(lw.g, b, bRank - 2, 4);
    if (!ok) throw new ScheduleError('matmul.bVector', `${what}: vector loads of B need it contiguous along ${bLayout === 'k_by_n' ? 'N with threadCols' : 'K with tileK'} a multiple of 4 and K a multiple of tileK`);
  }
  const vectorTypes = new Set(['f32', 'f16', 'bf16']);
  if ((aVector === 4 && !vectorTypes.has(a.type.dtype)) || (bVector === 4 && !vectorTypes.has(b.type.dtype))) throw new ScheduleError('matmul.aVector', `${what}: vector loads need float operands`);
  // The norm parameters ride A's vector loads: 4 at a time exactly when A is.
  return { lanes: L, aVector, bVector, normVector: aVector, bLayout };
}

/** `host` whose `kb.input` gives one slot per graph value, however often a lambda is translated. */
function bindOnce(host: FusedHost, kb: KernelBuilder): FusedHost {
  const slots = new Map<number, number>();
  const input = (role: string, value: number, dtype: DType): number => {
    const known = slots.get(value);
    if (known !== undefined) return known;
    const slot = kb.input(role, value, dtype);
    slots.set(value, slot);
    return slot;
  };
  return { ...host, kb: { input, let: (out, prefix, init) => kb.let(out, prefix, init), fresh: (prefix) => kb.fresh(prefix) } };
}

/**
 * The tensor-core operands of a matmul: both f16 or both bf16, A contiguous along K and B along
 * N or (a transposed weight, `x @ transpose(w)`) along K, so 8-element copies are runs of memory;
 * no norm fold. Undefined: the scalar tiled path.
 */
function mmaOperands(g: Graph, n: Node, a: Node, b: Node): { readonly input: MatrixInput; readonly bLayout: MmaBLayout } | undefined {
  const t = a.type.dtype;
  if ((t !== 'f16' && t !== 'bf16') || b.type.dtype !== t) return undefined;
  if (n.op === 'fused_matmul' && normPrologueOf(n.attrs) !== undefined) return undefined;
  const aRank = a.type.shape.length;
  const bRank = b.type.shape.length;
  if (unitStrideAxis(g, a) !== aRank - 1) return undefined;
  const bAxis = unitStrideAxis(g, b);
  if (bAxis === bRank - 1) return { input: t, bLayout: 'k_by_n' };
  if (bAxis === bRank - 2) return { input: t, bLayout: 'n_by_k' };
  return undefined;
}

function sAddAll(xs: readonly SizeExpr[]): SizeExpr {
  return xs.length === 1 && xs[0] !== undefined ? xs[0] : { kind: 'add', args: xs };
}

/**
 * MatmulSchedule.kSplit (matmul/stream.ts): the partial-sums kernel over tiles of tileK
 * weight rows, then the reduction kernel with the epilogue. Needs the batch folded into M (a
 * 2-D weight), the weight contiguous along N in vec4 runs, and no inline norm fold.
 */
function emitStreamMatmul(lw: Lowering, n: Node, ms: MatmulSchedule, when: StepCondition | undefined): void {
  const a = lw.operand(n, 0);
  const b = lw.operand(n, 1);
  const what = `%${n.id} (${n.op} ${printType(a.type)} x ${printType(b.type)})`;
  const L = lw.target.subgroupSize;
  const out = n.type.shape;
  const rank = out.length;
  if (L === 0 || !lw.s.useSubgroups) throw new ScheduleError('matmul.kSplit', `${what}: the target has no subgroups`);
  if (!(b.type.shape.length === 2 && a.type.shape.length === rank)) throw new ScheduleError('matmul.kSplit', `${what}: needs a 2-D weight (the batch folded into the rows)`);
  if (!hasVectorRuns(lw.g, b, 1, 4) || unitStrideAxis(lw.g, b) !== 1) throw new ScheduleError('matmul.kSplit', `${what}: needs the weight contiguous along N in runs of 4`);
  if (ms.tileCols % (4 * L) !== 0 || ms.tileCols <= 0) throw new ScheduleError('matmul.tileCols', `${what}: kSplit needs tileCols a positive multiple of ${4 * L} (4 x the subgroup size), got ${ms.tileCols}`);
  if (ms.tileK < 1 || ms.tileRows < 1) throw new ScheduleError('matmul.tileK', `${what}: kSplit needs tileK and tileRows >= 1`);
  const M = matmulRows(n, a, b);
  const N = out[rank - 1] ?? dimConst(1);
  const K = a.type.shape[a.type.shape.length - 1] ?? dimConst(1);
  const [Me, Ne, Ke] = [dimExpr(M), dimExpr(N), dimExpr(K)];
  const [Ms, Ns, Ks] = [dimToSize(M), dimToSize(N), dimToSize(K)];
  const tilesS = sCeilDiv(Ks, ms.tileK);
  // Sized for the rows this path runs with: a decode path (`when: M <= c`) holds at most c rows,
  // while every plan buffer is allocated at the run's dims, prefill runs included (at T = 1024 a
  // [tiles, M, N] temp of GPT-2's qkv matmul was 226 MB, over the 128 MiB binding limit).
  const rowsCap = when !== undefined && when.op === '<=' && when.and === undefined ? sMinConst(Ms, when.value) : Ms;
  const part = lw.tempNode({ op: 'matmul_partials', operands: [], attrs: {}, type: { dtype: 'f32', shape: [] }, loc: n.loc, ...(n.scope !== undefined ? { scope: n.scope } : {}) }, sMul(tilesS, rowsCap, Ns));
  const aAddr = (row: Expr, k: Expr): Expr => (a.op === 'view' ? elementOffset(lw.g, a, [...unravel(a.type.shape.slice(0, -1), row, dimExpr), k], dimExpr) : add(mul(row, Ke), k));
  const bAddr = (k: Expr, col: Expr): Expr => (b.op === 'view' ? elementOffset(lw.g, b, [k, col], dimExpr) : add(mul(k, Ne), col));
  const partIndex = (kt: Expr, row: Expr, col: Expr): Expr => add(mul(add(mul(kt, Me), row), Ne), col);
  // Kernel 1: partial sums per tile of weight rows.
  {
    const kb = new KernelBuilder();
    const aSlot = kb.input('a', a.id, a.type.dtype);
    const bSlot = kb.inputVector('b', b.id, b.type.dtype, 4);
    const partSlot = kb.output('part', part.id, 'f32');
    const body: Stmt[] = [];
    emitStreamPartials({ kb, schedule: ms, lanes: L, aSlot, bSlot, partSlot, aType: storageType(a.type.dtype), bType: storageType(b.type.dtype), M: Me, N: Ne, K: Ke, aAddr, bAddr, partIndex }, body);
    const traffic: Traffic = {
      bytesRead: sAddAll([sMul(Ms, Ks, sCeilDiv(Ns, ms.tileCols), sConst(storageBytes(a.type.dtype))), sMul(Ks, Ns, sCeilDiv(Ms, ms.tileRows), sConst(storageBytes(b.type.dtype)))]),
      bytesWritten: sMul(tilesS, Ms, Ns, sConst(4)),
      flops: lw.flops(n),
    };
    const grid: readonly [SizeExpr, SizeExpr, SizeExpr] = [sCeilDiv(Ns, ms.tileCols), tilesS, sCeilDiv(Ms, ms.tileRows)];
    lw.finish(n, n.op, kb, body, [L, 1, 1], grid, { kind: 'tiled_matmul', ...ms, bVector: 4 }, traffic, when);
  }
  // Kernel 2: sum the partials of each output, then the epilogue; one thread per output.
  {
    const kb = new KernelBuilder();
    const partSlot = kb.input('part', part.id, 'f32');
    const oSlot = kb.output('out', n.id, n.type.dtype);
    const host = lw.fusedHost(kb);
    const ep = n.op === 'fused_matmul' ? lambdaAttr(n, 'epilogue') : undefined;
    const epOperands = n.operands.map((_, i) => lw.operand(n, i));
    const body: Stmt[] = [];
    const flat = kb.let(body, 'o', add(mul(lw.linearWorkgroup(kb, body), u32(lw.s.mapWorkgroupSize)), builtin('local_index')));
    const total = mul(Me, Ne);
    const inner: Stmt[] = [];
    const row = kb.let(inner, 'row', div(flat, Ne));
    const col = kb.let(inner, 'col', rem(flat, Ne));
    emitStreamReduce(kb, inner, {
      tiles: Ks.kind === 'const' ? u32(Math.ceil(Ks.value / ms.tileK)) : div(add(Ke, u32(ms.tileK - 1)), u32(ms.tileK)),
      flat,
      partSlot,
      partIndex: (kt) => partIndex(kt, row, col),
      store: (value) => {
        if (ep === undefined) return [{ kind: 'store', slot: oSlot, index: flat, value: cast(storageType(n.type.dtype), value) }];
        const st: Stmt[] = [];
        const idx = unravelFlat(host, st, out, flat);
        const y = translateLambda(host, st, n, ep.params, ep.body, epOperands, idx, flat, value);
        st.push({ kind: 'store', slot: oSlot, index: flat, value: cast(storageType(n.type.dtype), y) });
        return st;
      },
    });
    body.push({ kind: 'if', cond: lt(flat, total), then: inner, else: [] });
    const outputs = sMul(Ms, Ns);
    const traffic: Traffic = {
      bytesRead: sAddAll([sMul(tilesS, outputs, sConst(4)), ...(ep === undefined ? [] : [epilogueReadBytes(host, n)])]),
      bytesWritten: sMul(outputs, sConst(storageBytes(n.type.dtype))),
      flops: sMul(tilesS, outputs),
    };
    lw.finish(n, n.op, kb, body, [lw.s.mapWorkgroupSize, 1, 1], lw.linearGrid(sCeilDiv(outputs, lw.s.mapWorkgroupSize)), { kind: 'map', workgroupSize: lw.s.mapWorkgroupSize }, traffic, when);
  }
}
