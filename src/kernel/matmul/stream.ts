// The streaming decode matmul (MatmulSchedule.kSplit): few rows of A against a weight stored
// [K, N] (contiguous along N), read the way a CPU adapter streams memory best. A workgroup of one
// subgroup owns a tile of tileK rows of the weight x tileCols columns: each step its L lanes read
// L consecutive vec4s of one weight row (128 contiguous bytes on lavapipe) and the next row comes
// next, so every workgroup streams a few kilobytes of adjacent rows. The K-split kernel
// (matmul/gemv.ts) instead gives each lane its own rows, 4 rows apart: 3.4 GB/s where these
// tiles streamed ~5 GB/s in a scratch test (bench/lavapipe/gemv2.mjs; a plain streaming read ~6).
// Each workgroup writes its partial sums for its columns to a temp [ceil(K / tileK), M, N]; a
// second kernel sums the partials of each output and applies the epilogue.
import { dimConst } from '../../base/dim.js';
import { type Node, lambdaAttr } from '../../graph/ir.js';
import { printType } from '../../graph/types.js';
import { KernelBuilder } from '../ir/builder.js';
import { type Expr, type ScalarType, type Stmt, type Traffic, add, and, arrayLoad, bin, builtin, call, cast, div, lit, load, lt, mul, rem, subgroup, u32, v } from '../ir/ir.js';
import { storageBytes, storageType } from '../ir/storage.js';
import type { SizeExpr, StepCondition } from '../plan/plan.js';
import { dimToSize, sCeilDiv, sConst, sMinConst, sMul } from '../plan/to-size.js';
import { type MatmulSchedule, ScheduleError } from '../schedule/schedule.js';
import { dimExpr } from '../lower/dims.js';
import { epilogueReadBytes, translateLambda, unravelFlat } from '../lower/fused.js';
import type { Lowering } from '../lower/lowering.js';
import { elementOffset, hasVectorRuns, unitStrideAxis, unravel } from '../lower/view.js';
import { matmulRows, sAddAll } from './operands.js';
import { normPrologueOf } from '../../ops/fused.js';
import type { LaneNorm } from './lanes.js';

export interface StreamPartialsInput {
  readonly kb: KernelBuilder;
  readonly schedule: MatmulSchedule;
  readonly lanes: number;
  readonly aSlot: number;
  readonly bSlot: number;
  readonly partSlot: number;
  readonly aType: ScalarType;
  readonly bType: ScalarType;
  readonly M: Expr;
  readonly N: Expr;
  readonly K: Expr;
  readonly aAddr: (row: Expr, k: Expr) => Expr;
  /** Element address of the weight at (k, col): contiguous along col, vec4-aligned at col % 4 == 0. */
  readonly bAddr: (k: Expr, col: Expr) => Expr;
  /** Flat index of partial (tile kt, row, col) in the temp: (kt * M + row) * N + col, batch offset included. */
  readonly partIndex: (kt: Expr, row: Expr, col: Expr) => Expr;
  /** A folded norm (normFold 'inline'), parameters read one element at a time. */
  readonly norm?: LaneNorm;
}

/**
 * Kernel 1: partial sums. Launch [L, 1, 1] x [ceil(N / tileCols), ceil(K / tileK), ceil(M / tileRows)]; each
 * lane owns tileCols / (4L) vec4 columns (lane l, l + L, ...), tileRows rows of A (the rows are
 * few: a decode step's tokens).
 */
export function emitStreamPartials(p: StreamPartialsInput, body: Stmt[]): void {
  const { kb, lanes: L, M, N, K } = p;
  const { tileRows: TM, tileCols: TN, tileK: R } = p.schedule;
  const C4 = TN / (4 * L); // vec4 columns per lane
  const lane = builtin('local_index');
  const col0 = kb.let(body, 'col0', mul(builtin('workgroup_id', 0), u32(TN)));
  const kt = kb.let(body, 'kt', builtin('workgroup_id', 1));
  const k0 = kb.let(body, 'k0', mul(kt, u32(R)));
  const kEnd = kb.let(body, 'k_end', call('min', [add(k0, u32(R)), K], 'u32'));
  const nVecLast = kb.let(body, 'n_vec_last', bin('sub', N, u32(4)));
  const mLast = kb.let(body, 'm_last', bin('sub', M, u32(1)));
  const row0 = kb.let(body, 'row0', mul(builtin('workgroup_id', 2), u32(TM)));
  // The lane's column groups, clamped to the last vec4 (columns past N are never stored).
  const cols = Array.from({ length: C4 }, (_, c) => kb.let(body, 'c4', call('min', [add(col0, mul(add(lane, u32(c * L)), u32(4))), nVecLast], 'u32')));
  const rows = Array.from({ length: TM }, (_, r) => kb.let(body, 'a_row', call('min', [add(row0, u32(r)), mLast], 'u32')));
  const stats = p.norm === undefined ? undefined : rowStats(p, p.norm, rows, body);
  const acc = kb.fresh('acc');
  body.push({ kind: 'private_array', name: acc, type: 'f32', length: TM * C4 * 4, init: lit('f32', 0) });
  const k = kb.fresh('k');
  const kv = v(k, 'u32');
  const s: Stmt[] = [];
  const g = p.norm === undefined ? undefined : kb.let(s, 'g', cast('f32', load(p.norm.gammaSlot, kv, p.norm.type)));
  const be = p.norm?.betaSlot === undefined ? undefined : kb.let(s, 'beta', cast('f32', load(p.norm.betaSlot, kv, p.norm.type)));
  const xs = rows.map((row, r) => {
    const x = cast('f32', load(p.aSlot, p.aAddr(row, kv), p.aType));
    const st = stats?.[r];
    if (st === undefined || g === undefined) return kb.let(s, 'x', x);
    // Normalized on load, as the norm kernel computes it: ((x - x0) - mean_d) rstd gamma (+ beta).
    const centered = st.shift === undefined ? x : bin('sub', bin('sub', x, st.shift), st.mean ?? lit('f32', 0));
    const y = bin('mul', bin('mul', centered, st.rstd), g);
    return kb.let(s, 'x', be === undefined ? y : bin('add', y, be));
  });
  for (let c = 0; c < C4; c++) {
    const names = [0, 1, 2, 3].map(() => kb.fresh('b'));
    s.push({ kind: 'load_vec', names, slot: p.bSlot, index: div(p.bAddr(kv, cols[c] ?? u32(0)), u32(4)), type: p.bType });
    for (let e = 0; e < 4; e++) {
      const bv = cast('f32', v(names[e] ?? '', p.bType));
      for (let r = 0; r < TM; r++) {
        const at = u32((r * C4 + c) * 4 + e);
        s.push({ kind: 'array_store', array: acc, index: at, value: bin('add', arrayLoad(acc, at, 'f32'), bin('mul', xs[r] ?? lit('f32', 0), bv)) });
      }
    }
  }
  body.push({ kind: 'for', var: k, start: k0, end: kEnd, step: u32(1), body: s });
  // Store the lane's partials (rows past M and columns past N are not stored).
  for (let r = 0; r < TM; r++) {
    for (let c = 0; c < C4; c++) {
      for (let e = 0; e < 4; e++) {
        const col = add(col0, add(mul(add(lane, u32(c * L)), u32(4)), u32(e)));
        const row = add(row0, u32(r));
        body.push({
          kind: 'if',
          cond: and(lt(row, M), lt(col, N)),
          then: [{ kind: 'store', slot: p.partSlot, index: p.partIndex(kt, row, col), value: arrayLoad(acc, u32((r * C4 + c) * 4 + e), 'f32') }],
          else: [],
        });
      }
    }
  }
}

/**
 * A folded norm's per-row statistics, from two passes over each of the workgroup's rows (lanes
 * stride K, one subgroup sum each; the row is K floats, read from cache next to the tile's
 * tileK x tileCols weights). The K-split kernel's fold (matmul/gemv.ts) in the same form:
 * centered on the row's first element x0, then on mean_d = mean(x - x0) (a second pass, so
 * the variance never cancels), so nothing rounds at |mean|.
 */
function rowStats(p: StreamPartialsInput, norm: LaneNorm, rows: readonly Expr[], body: Stmt[]): { shift?: Expr; mean?: Expr; rstd: Expr }[] {
  const { kb, lanes: L, K } = p;
  const isLayer = norm.op === 'layernorm';
  const count = kb.let(body, 'count', cast('f32', K));
  const rowLoop = (row: Expr, f: (s: Stmt[], x: Expr) => Stmt[]): Stmt => {
    const j = kb.fresh('j');
    const s: Stmt[] = [];
    const x = kb.let(s, 'xr', cast('f32', load(p.aSlot, p.aAddr(row, v(j, 'u32')), p.aType)));
    s.push(...f(s, x));
    return { kind: 'for', var: j, start: builtin('local_index'), end: K, step: u32(L), body: s };
  };
  return rows.map((row) => {
    const shift = isLayer ? kb.let(body, 'x0', cast('f32', load(p.aSlot, p.aAddr(row, u32(0)), p.aType))) : undefined;
    let mean: Expr | undefined;
    if (shift !== undefined) {
      const sum = kb.var(body, 'row_sum', 'f32', lit('f32', 0));
      body.push(rowLoop(row, (_, x) => [{ kind: 'assign', name: sum, value: bin('add', v(sum, 'f32'), bin('sub', x, shift)) }]));
      mean = kb.let(body, 'mean_d', bin('div', subgroup('sum', v(sum, 'f32')), count));
    }
    const sq = kb.var(body, 'row_sq', 'f32', lit('f32', 0));
    body.push(
      rowLoop(row, (s, x) => {
        const d = kb.let(s, 'd', shift === undefined ? x : bin('sub', bin('sub', x, shift), mean ?? lit('f32', 0)));
        return [{ kind: 'assign', name: sq, value: bin('add', v(sq, 'f32'), bin('mul', d, d)) }];
      }),
    );
    const rstd = kb.let(body, 'rstd', call('rsqrt', [bin('add', bin('div', subgroup('sum', v(sq, 'f32')), count), lit('f32', norm.eps))], 'f32'));
    return { ...(shift !== undefined ? { shift } : {}), ...(mean !== undefined ? { mean } : {}), rstd };
  });
}

/** The fused_matmul's folded norm (fuse-norm) as scalar parameter slots of the partials kernel, if it has one. */
function streamNorm(lw: Lowering, n: Node, kb: KernelBuilder): LaneNorm | undefined {
  const fold = n.op === 'fused_matmul' ? normPrologueOf(n.attrs) : undefined;
  if (fold === undefined) return undefined;
  const param = (i: number): Node => lw.operand(n, n.operands.length - fold.params + i);
  const gamma = param(0);
  return {
    op: fold.op,
    eps: fold.eps,
    type: storageType(gamma.type.dtype),
    vector: 1,
    gammaSlot: kb.input('gamma', gamma.id, gamma.type.dtype),
    ...(fold.op === 'layernorm' ? { betaSlot: kb.input('beta', param(1).id, param(1).type.dtype) } : {}),
  };
}

/** Kernel 2: out[row, col] = epilogue(sum over the K tiles of the partials); one thread per output. */
export function emitStreamReduce(kb: KernelBuilder, body: Stmt[], o: { readonly tiles: Expr; readonly flat: Expr; readonly partIndex: (kt: Expr) => Expr; readonly partSlot: number; readonly store: (value: Expr) => Stmt[] }): void {
  const sum = kb.var(body, 'sum', 'f32', lit('f32', 0));
  const t = kb.fresh('t');
  body.push({ kind: 'for', var: t, start: u32(0), end: o.tiles, step: u32(1), body: [{ kind: 'assign', name: sum, value: bin('add', v(sum, 'f32'), load(o.partSlot, o.partIndex(v(t, 'u32')), 'f32')) }] });
  body.push(...o.store(v(sum, 'f32')));
}

/**
 * MatmulSchedule.kSplit (matmul/stream.ts): the partial-sums kernel over tiles of tileK
 * weight rows, then the reduction kernel with the epilogue. Needs the batch folded into M (a
 * 2-D weight) and the weight contiguous along N in vec4 runs. A folded norm (fuse-norm, normFold
 * 'inline') is applied as A is loaded, from row statistics each workgroup computes first.
 */
export function emitStreamMatmul(lw: Lowering, n: Node, ms: MatmulSchedule, when: StepCondition | undefined): void {
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
    const norm = streamNorm(lw, n, kb);
    const body: Stmt[] = [];
    emitStreamPartials({ kb, schedule: ms, lanes: L, aSlot, bSlot, partSlot, aType: storageType(a.type.dtype), bType: storageType(b.type.dtype), M: Me, N: Ne, K: Ke, aAddr, bAddr, partIndex, ...(norm !== undefined ? { norm } : {}) }, body);
    // A folded norm: every workgroup reads its rows twice more (mean, variance; rmsnorm once)
    // and gamma (and beta) for its tileK rows of the weight.
    const workgroups = sMul(sCeilDiv(Ns, ms.tileCols), tilesS, sCeilDiv(Ms, ms.tileRows));
    const normBytes =
      norm === undefined
        ? []
        : [
            sMul(workgroups, sConst(ms.tileRows * (norm.op === 'layernorm' ? 2 : 1)), Ks, sConst(storageBytes(a.type.dtype))),
            sMul(sCeilDiv(Ns, ms.tileCols), sCeilDiv(Ms, ms.tileRows), Ks, sConst(storageBytes(lw.operand(n, n.operands.length - (norm.betaSlot === undefined ? 1 : 2)).type.dtype) * (norm.betaSlot === undefined ? 1 : 2))),
          ];
    const traffic: Traffic = {
      bytesRead: sAddAll([sMul(Ms, Ks, sCeilDiv(Ns, ms.tileCols), sConst(storageBytes(a.type.dtype))), sMul(Ks, Ns, sCeilDiv(Ms, ms.tileRows), sConst(storageBytes(b.type.dtype))), ...normBytes]),
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
