// The tiled matmul and fused_matmul (lower/lower.ts's Lowering): schedule tiles in workgroup memory,
// batch broadcasting, a normalization prologue (matmul/norm-prologue.ts), the fused epilogue, and the
// tensor-core body (matmul/mma.ts) where the operands qualify; the kSplit and kLanes decode
// kernels are stream.ts and gemv.ts. Over 400 lines because emitMatmulWith is one kernel body
// (tiles, prologue, K loop, epilogue) whose shared names read best in one place; the two
// 'separate' schedules (normFold, pairFold) re-enter it, so they live here too.
import { type Dim, dimConst, dimMul } from '../../base/dim.js';
import { type Node, lambdaAttr } from '../../graph/ir.js';
import type { DType } from '../../graph/types.js';
import { storageBytes, storageType } from '../ir/storage.js';
import { type Expr, type Stmt, type Traffic, add, and, arrayLoad, bin, builtin, call, cast, div, lit, load, lt, mul, rem, select, u32, v } from '../ir/ir.js';
import { KernelBuilder } from '../ir/builder.js';
import type { SizeExpr, StepCondition } from '../plan/plan.js';
import { type MatmulSchedule, ScheduleError, decodeScheduleFor, scheduleShapeKey, specializeMatmul } from '../schedule/schedule.js';
import { type LaneNorm, emitLaneMatmul } from './lanes.js';
import { emitGemv } from './gemv.js';
import { emitNorm } from '../lower/softmax-norm.js';
import { dimToSize, sCeilDiv, sConst, shapeElements, sMinConst, sMul } from '../plan/to-size.js';
import { epilogueReadBytes, translateLambda, unravelFlat } from '../lower/fused.js';
import { elementOffset, unravel } from '../lower/view.js';
import { accAsRead, normPrologueOf } from '../../ops/fused.js';
import { mapScalarExpr } from '../../graph/lambda.js';
import { emitFusedMap } from '../lower/map.js';
import { normFold } from './norm-prologue.js';
import { emitMmaMatmul } from './mma.js';
import { dimExpr, isOne, strides } from '../lower/dims.js';
import type { Lowering } from '../lower/lowering.js';
import { bindOnce, laneLayout, matmulRows, mmaOperands, sAddAll } from './operands.js';
import { emitStreamMatmul } from './stream.js';

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


/**
 * Where a product goes when it is not its node's whole buffer (the fused cross-entropy's chunks,
 * src/kernel/lower/cross-entropy.ts): `address` maps an output (row, col) to its offset in the
 * buffer bound for the node (rows of a larger tensor, or a transposed layout); with `accumulate`
 * the product is added to what is there (read and written by the thread that owns the element).
 * A rank-2 product without an epilogue.
 */
export interface MatmulInto {
  readonly address: (row: Expr, col: Expr) => Expr;
  readonly accumulate: boolean;
}

/**
 * A plain 2-D matmul node on the schedule's main matmul (never the decode kernels: those have
 * their own stores), stored through `into`.
 */
export function emitMatmulInto(lw: Lowering, n: Node, into: MatmulInto | undefined, operands?: { readonly a: Node; readonly b: Node }): void {
  if (n.op !== 'matmul' || n.type.shape.length !== 2) throw new Error(`internal: emitMatmulInto takes a rank-2 matmul, got %${n.id} ${n.op}`);
  emitMatmulWith(lw, n, specializeMatmul(lw.g, n, lw.s.matmul, operands), undefined, into);
}

function emitMatmulWith(lw: Lowering, n: Node, ms: MatmulSchedule, when?: StepCondition, into?: MatmulInto): void {
  const normOf = n.op === 'fused_matmul' ? normPrologueOf(n.attrs) : undefined;
  if (normOf !== undefined && ms.normFold === 'separate') return emitNormThenMatmul(lw, n, normOf, ms, when);
  const a = lw.operand(n, 0);
  const b = lw.operand(n, 1);
  // A paired epilogue (fuse-epilogue's silu(gate) * up over a packed gate/up product): inline
  // only where the schedule says so and the kernel has it (MatmulSchedule.pairFold).
  const pair = isPaired(n);
  if (pair && (ms.pairFold !== 'inline' || (lw.s.mmaMatmul !== undefined && mmaOperands(lw.g, n, a, b) !== undefined))) return emitProductThenPair(lw, n, ms, when);
  if (pair && (ms.kSplit === true || ms.laneBroadcast === true || (ms.kLanes !== true && ms.threadCols % 2 !== 0))) {
    throw new ScheduleError('matmul.pairFold', `%${n.id}: 'inline' needs the K-split GEMV (kLanes) or the tiled kernel with an even threadCols`);
  }
  if (ms.kSplit === true) return emitStreamMatmul(lw, n, ms, when);
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
  // Paired: B (the packed weight) has 2N columns, the result N.
  const NB = pair ? dimMul(dimConst(2), N) : N;
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
  const NBe = dimExpr(NB);
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
  const bOff = kb.let(body, 'b_off', matrixOffset(b.type.shape, mul(Ke, NBe)));
  const oOff = kb.let(body, 'out_off', mul(bz, mul(Me, Ne)));
  // fused_matmul: the epilogue lambda (lower/fused.ts) runs on the accumulator before the store.
  // The mma and lane epilogues are emitted once per accumulator column (unrolled): operands bound once.
  const host = mmaInput !== undefined || lanes !== undefined ? bindOnce(lw.fusedHost(kb), kb) : lw.fusedHost(kb);
  const ep = n.op === 'fused_matmul' ? lambdaAttr(n, 'epilogue') : undefined;
  const epOperands = n.operands.map((_, i) => lw.operand(n, i));
  const epilogueStore = (index: Expr, acc: Expr, accPair?: Expr): Stmt[] => {
    if (into?.accumulate === true) return [{ kind: 'store', slot: oSlot, index, value: cast(storageType(n.type.dtype), bin('add', cast('f32', load(oSlot, index, storageType(n.type.dtype))), acc)) }];
    if (ep === undefined) return [{ kind: 'store', slot: oSlot, index, value: cast(storageType(n.type.dtype), acc) }];
    const stmts: Stmt[] = [];
    const flat = kb.let(stmts, 'o', index);
    const idx = unravelFlat(host, stmts, out, flat);
    const value = translateLambda(host, stmts, n, ep.params, ep.body, epOperands, idx, flat, acc, accPair);
    stmts.push({ kind: 'store', slot: oSlot, index: flat, value: cast(storageType(n.type.dtype), value) });
    return stmts;
  };
  const outAddress = into?.address ?? ((row: Expr, col: Expr): Expr => add(oOff, add(mul(row, Ne), col)));
  if (into !== undefined && (ep !== undefined || batch.length > 0)) throw new Error(`internal: %${n.id}: a matmul stored through 'into' has no epilogue and no batch`);
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
  const NBs = dimToSize(NB);
  const Ks = dimToSize(K);
  const batchS = shapeElements(batch);
  const trafficFor = (tileRows: number, tileCols: number, extra: readonly SizeExpr[]): Traffic => ({
    // A is re-read once per column tile, B once per row tile (bounds-checked loads only).
    bytesRead: sAddAll([
      sMul(batchS, Ms, Ks, sCeilDiv(NBs, tileCols), sConst(storageBytes(a.type.dtype))),
      sMul(batchS, Ks, NBs, sCeilDiv(Ms, tileRows), sConst(storageBytes(b.type.dtype))),
      ...(ep === undefined ? [] : [epilogueReadBytes(host, n)]),
      ...(into?.accumulate === true ? [sMul(batchS, Ms, Ns, sConst(storageBytes(n.type.dtype)))] : []),
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
    if (pair && lanes.bLayout === 'k_by_n' && lanes.bVector === 4) throw new ScheduleError('matmul.pairFold', `%${n.id}: 'inline' in the K-split GEMV needs per-column weight loads (bVector 1, or a transposed weight)`);
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
        bAddr: bView ?? ((k, col) => add(bOff, add(mul(k, NBe), col))),
        bLayout: lanes.bLayout,
        ...(norm !== undefined ? { norm } : {}),
        outIndex: outAddress,
        store: epilogueStore,
        ...(pair ? { pairStore: epilogueStore } : {}),
      },
      body,
    );
    // Paired: a workgroup's tileCols columns are tileCols / 2 result columns of each half.
    const colTiles = pair ? sCeilDiv(Ns, TN / 2) : sCeilDiv(Ns, TN);
    const grid: readonly [SizeExpr, SizeExpr, SizeExpr] = ms.rowsFirst === true && ms.kLanes !== true ? [sCeilDiv(Ms, TM), colTiles, batchS] : [colTiles, sCeilDiv(Ms, TM), batchS];
    // The norm reads gamma (and beta) K floats per workgroup; layernorm's mean pass reads A once more.
    const paramBytes =
      norm === undefined
        ? []
        : [
            sMul(batchS, sCeilDiv(Ms, TM), colTiles, Ks, sConst(storageBytes(param(0).type.dtype) * (norm.betaSlot === undefined ? 1 : 2))),
            // layernorm's mean pass reads A once more (the K-split kernel: twice, mean then variance)
            ...(norm.op === 'layernorm' ? [sMul(batchS, Ms, Ks, colTiles, sConst(storageBytes(a.type.dtype) * (ms.kLanes === true ? 2 : 1)))] : []),
            ...(norm.op === 'rmsnorm' && ms.kLanes === true ? [sMul(batchS, Ms, Ks, colTiles, sConst(storageBytes(a.type.dtype)))] : []),
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
        outIndex: outAddress,
      },
      body,
    );
    const grid: readonly [SizeExpr, SizeExpr, SizeExpr] = [sCeilDiv(Ns, mm.tileCols), sCeilDiv(Ms, mm.tileRows), batchS];
    lw.finish(n, n.op, kb, body, [r.threads, 1, 1], grid, r.schedule, trafficFor(mm.tileRows, mm.tileCols, []), when);
    return;
  }
  const row0 = kb.let(body, 'row0', mul(builtin('workgroup_id', 1), u32(TM)));
  // Paired: the tile's columns c < TN / 2 are result columns col0 + c of the first half of B,
  // the others the same result columns of the second half (N + col0 + c - TN / 2). With
  // TN / 2 = (RN / 2) thx, thread column jj and jj + RN / 2 are one result column's pair.
  const col0 = kb.let(body, 'col0', mul(builtin('workgroup_id', 0), u32(pair ? TN / 2 : TN)));
  const bCol = (c: Expr): Expr => (pair ? select(lt(c, u32(TN / 2)), add(col0, c), add(Ne, add(col0, bin('sub', c, u32(TN / 2))))) : add(col0, c));
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
    const gcol = call('min', [bCol(add(tx, mul(v(jb, 'u32'), u32(thx)))), bin('sub', NBe, u32(1))], 'u32');
    const bAddr = viewAddress(b, false);
    lb.push({ kind: 'for', var: jb, start: u32(0), end: u32(RN), step: u32(1), body: [{ kind: 'array_store', array: bVal, index: v(jb, 'u32'), value: cast('f32', load(bSlot, bAddr !== undefined ? bAddr(kvar, gcol) : add(bOff, add(mul(kvar, NBe), gcol)), storageType(b.type.dtype))) }] });
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
      stage(bTile, TN, TK * TN, bSlot, b.type.dtype, (r) => add(kv, r), bCol, Ke, NBe, bOff, NBe, viewAddress(b, false)),
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
      const valueAt = (j: Expr): Expr => (fold === undefined ? arrayLoad(accName, add(mul(wiv, u32(RN)), j), 'f32') : fold.finish(pre, wiv, j));
      const value = valueAt(wjv);
      // Paired: accumulator jj + RN / 2 holds the same result column's second-half product.
      const valuePair = pair ? kb.let(pre, 'acc_pair', valueAt(add(wjv, u32(RN / 2)))) : undefined;
      return [...pre, ...epilogueStore(outAddress(orow, ocol), value, valuePair)];
    })(),
    else: [],
  });
  body.push({
    kind: 'for',
    var: wi,
    start: u32(0),
    end: u32(RM),
    step: u32(1),
    body: [{ kind: 'for', var: wj, start: u32(0), end: u32(pair ? RN / 2 : RN), step: u32(1), body: wb }],
  });
  // Norm fold: gamma (and beta) once per K tile per workgroup; A is not read again.
  const traffic = trafficFor(TM, TN, fold === undefined ? [] : [fold.paramBytes(sMul(batchS, sCeilDiv(Ms, TM), sCeilDiv(NBs, TN)), Ks)]);
  const grid: readonly [SizeExpr, SizeExpr, SizeExpr] = [pair ? sCeilDiv(Ns, TN / 2) : sCeilDiv(Ns, TN), sCeilDiv(Ms, TM), batchS];
  lw.finish(n, n.op, kb, body, [thx, thy, 1], grid, { kind: 'tiled_matmul', ...ms }, traffic, when);
}

/** Whether `n` is a paired fused_matmul (fuse-epilogue: `pair`, acc() and acc_pair() over the two halves). */
function isPaired(n: Node): boolean {
  const p = n.attrs['pair'];
  return n.op === 'fused_matmul' && p?.kind === 'bool' && p.value;
}

/**
 * MatmulSchedule.pairFold 'separate' (and the tensor-core path): the product [.., 2N] (with the
 * folded norm, if any) into a temp, then a map kernel applies the epilogue, reading acc() at
 * column j and acc_pair() at N + j of the temp. The same result as the unpacked gate and up
 * matmuls with the SwiGLU epilogue, in two dispatches.
 */
function emitProductThenPair(lw: Lowering, n: Node, ms: MatmulSchedule, when: StepCondition | undefined): void {
  const ep = lambdaAttr(n, 'epilogue');
  const norm = normPrologueOf(n.attrs);
  const params = norm === undefined ? [] : n.operands.slice(n.operands.length - norm.params);
  const extra = n.operands.slice(2, n.operands.length - params.length); // the epilogue's operands
  const out = n.type.shape;
  const rank = out.length;
  const half = out[rank - 1] ?? dimConst(1);
  const productShape = [...out.slice(0, -1), dimMul(dimConst(2), half)];
  const dtype = lw.operand(n, 0).type.dtype;
  // A decode path's temp holds at most its `when` bound of rows (see emitStreamMatmul).
  const rowsS = shapeElements(out.slice(0, -1));
  const cap = when !== undefined && when.op === '<=' && when.and === undefined ? sMinConst(rowsS, when.value) : rowsS;
  const { pair: _pair, epilogue: _epilogue, ...rest } = n.attrs;
  const identity = { kind: 'lambda' as const, params: ep.params, body: { kind: 'apply' as const, op: 'acc', args: [], dtype } };
  const product = lw.tempNode(
    { op: 'fused_matmul', operands: [n.operands[0] ?? -1, n.operands[1] ?? -1, ...params], attrs: { ...rest, epilogue: identity }, type: { dtype, shape: productShape }, loc: n.loc, ...(n.from !== undefined ? { from: n.from } : {}), ...(n.scope !== undefined ? { scope: n.scope } : {}) },
    sMul(cap, dimToSize(dimMul(dimConst(2), half))),
  );
  const { pairFold: _fold, ...plain } = ms;
  emitMatmulWith(lw, product, plain, when);
  // The epilogue as a fused_map over [product, extra...]: reads k >= 2 move to k - 1, then acc()
  // and acc_pair() become reads of operand 0.
  const shifted = mapScalarExpr(ep.body, (x, rec) => (x.kind === 'read' ? { ...x, operand: x.operand - 1, indices: x.indices.map(rec) } : undefined));
  const body = accAsRead(shifted, 0, rank, dtype, half);
  const map: Node = { ...n, op: 'fused_map', operands: [product.id, ...extra], attrs: { shape: { kind: 'dims', value: out }, body: { kind: 'lambda', params: ep.params, body } } };
  emitFusedMap(lw, map, when);
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
