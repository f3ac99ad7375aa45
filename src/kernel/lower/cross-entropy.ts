// The fused cross-entropy's kernels (src/ops/cross-entropy.ts; Liger-kernel style): the N rows of
// h are taken `chunkRows` at a time (Schedule.crossEntropy, else chooseCrossEntropySchedule), and
// per chunk of c rows, in launch order:
//   1. logits tile [c, V] = h[rows] @ w            the schedule's matmul kernel (emitMatmulInto)
//   2. one row kernel: per row lse (online max/sum), loss_r = lse - z[target] into a [N] temp,
//      and (with any gradient result) g = (softmax - onehot) / N written over the tile
//   3. db += column sums of g                      (with a bias gradient)
//   4. dh[rows] = g @ w^T                          matmul stored at the chunk's rows of dh
//   5. dw (+)= h[rows]^T @ g                       matmul accumulated in place (w's layout)
// and at the end loss = mean of the [N] temp. The tile is the only vocabulary-wide buffer: one
// temp of c x V f32, reused by every chunk, where the unfused loss has several [N, V] ones.
// h's rows and w's transposes are views (no copy); the chunk's first row is a literal in its
// kernels, so chunks do not share kernels (a remainder chunk differs in size anyway).
import { type Dim, dimConst, dimConstValue } from '../../base/dim.js';
import type { Node, ScalarExpr } from '../../graph/ir.js';
import { i32, idx, indexOp, substituteIndex } from '../../graph/lambda.js';
import { viewMapOf } from './view.js';
import { storageBytes, storageType } from '../ir/storage.js';
import { type Expr, type KernelSchedule, type Stmt, add, bin, builtin, call, cast, load, lit, lt, mul, select, u32, v } from '../ir/ir.js';
import { KernelBuilder } from '../ir/builder.js';
import { sConst } from '../plan/to-size.js';
import { ScheduleError, chooseCrossEntropySchedule } from '../schedule/schedule.js';
import { crossEntropyTransposed } from '../../ops/cross-entropy.js';
import { emitMatmulInto } from '../matmul/matmul.js';
import { emitReduce, rowLoop, workgroupReduce } from './reduce.js';
import type { Lowering } from './lowering.js';

/** The gradient result nodes a fused_cross_entropy has (its kernels write exactly these). */
export interface CrossEntropyResults {
  readonly dh?: Node;
  readonly dw?: Node;
  readonly db?: Node;
}

export function ceResultKey(op: string): keyof CrossEntropyResults {
  if (op === 'fused_cross_entropy_dh') return 'dh';
  if (op === 'fused_cross_entropy_dw') return 'dw';
  if (op === 'fused_cross_entropy_db') return 'db';
  throw new Error(`internal: ${op} is no fused_cross_entropy result`);
}

const constOf = (d: Dim | undefined): number | undefined => (d === undefined ? undefined : dimConstValue(d));

export function emitFusedCrossEntropy(lw: Lowering, n: Node, results: CrossEntropyResults): void {
  const h = lw.operand(n, 0);
  const w = lw.operand(n, 1);
  const targets = lw.operand(n, 2);
  const bias = n.operands.length > 3 ? lw.operand(n, 3) : undefined;
  const transposed = crossEntropyTransposed(n);
  const lead = h.type.shape.slice(0, -1).map(constOf);
  const d = constOf(h.type.shape[h.type.shape.length - 1]);
  const V = constOf(w.type.shape[transposed ? 0 : 1]);
  if (lead.some((x) => x === undefined) || d === undefined || V === undefined) {
    throw new ScheduleError('crossEntropy.chunkRows', `%${n.id}: the fused cross-entropy chunks rows at compile time: rows, width and vocabulary must be constants`);
  }
  const leadC = lead as number[];
  const N = leadC.reduce((a, x) => a * x, 1);
  const s = lw.s.crossEntropy ?? chooseCrossEntropySchedule(N, V);
  if (!Number.isInteger(s.chunkRows) || s.chunkRows < 1) throw new ScheduleError('crossEntropy.chunkRows', `%${n.id}: chunkRows must be a positive integer, got ${s.chunkRows}`);
  const c = Math.min(s.chunkRows, N);
  const chunks = Math.ceil(N / c);
  const scope = `${n.scope ?? 'loss'}_ce`;
  const at = (what: string): Pick<Node, 'attrs' | 'loc' | 'scope'> => ({ attrs: {}, loc: n.loc, scope: `${scope}_${what}` });
  const f32 = (shape: readonly number[]): Node['type'] => ({ dtype: 'f32', shape: shape.map(dimConst) });

  // A view of `src` of `shape` whose element at the view's indices is src[indices] (composed
  // with src's own map when src is a view: the kernels read one level of map).
  const view = (src: Node, shape: readonly number[], indices: readonly ScalarExpr[]): Node => {
    let source = src;
    let at2 = indices;
    if (src.op === 'view') {
      const m = viewMapOf(lw.g, src);
      at2 = m.indices.map((e) => substituteIndex(e, indices));
      source = m.source;
    }
    const map = { kind: 'lambda' as const, params: shape.map((_, k) => `i${k}`), body: { kind: 'read' as const, operand: 0, indices: at2, dtype: src.type.dtype } };
    return lw.aliasNode({ op: 'view', operands: [source.id], attrs: { shape: { kind: 'dims', value: shape.map(dimConst) }, map }, type: { dtype: src.type.dtype, shape: shape.map(dimConst) }, loc: n.loc, scope }, source.id);
  };
  // h's row q (flat over the leading dims) as its leading indices.
  const rowIndices = (q: ScalarExpr): ScalarExpr[] => {
    const out: ScalarExpr[] = [];
    let rest = q;
    for (let k = leadC.length - 1; k >= 0; k--) {
      const size = leadC[k] ?? 1;
      if (k === 0) out.unshift(rest);
      else {
        out.unshift(indexOp('mod', rest, i32(size)));
        rest = indexOp('div', rest, i32(size));
      }
    }
    return out;
  };
  // w as the [d, V] right operand of the logits, and as the [V, d] one of dh = g w^T.
  const wDV = transposed ? view(w, [d, V], [idx(1), idx(0)]) : w;
  const wVD = transposed ? w : view(w, [V, d], [idx(1), idx(0)]);
  const tile = lw.tempNode({ op: 'matmul', operands: [], ...at('logits'), type: f32([c, V]) }, sConst(c * V));
  const lossRows = lw.tempNode({ op: 'sub', operands: [], ...at('rows'), type: f32([N]) }, sConst(N));
  const gradient = results.dh !== undefined || results.dw !== undefined || results.db !== undefined;
  for (let i = 0; i < chunks; i++) {
    const r0 = i * c;
    const rows = Math.min(c, N - r0);
    const tileI = lw.aliasNode({ op: 'matmul', operands: [], ...at('logits'), type: f32([rows, V]) }, tile.id);
    const hI = view(h, [rows, d], [...rowIndices(indexOp('add', idx(0), i32(r0))), idx(1)]);
    emitMatmulInto(lw, { ...tileI, operands: [hI.id, wDV.id] }, undefined, { a: hI, b: wDV });
    emitRows(lw, n, { tile: tileI, targets, lossRows, r0, rows, V, N, gradient, ...(bias !== undefined ? { bias } : {}) }, { kind: 'cross_entropy', workgroupSize: lw.s.rowWorkgroupSize, useSubgroups: lw.s.useSubgroups, chunkRows: c, chunk: i, chunks, firstRow: r0, rows, total: N, gradient });
    if (results.db !== undefined) emitBiasGrad(lw, results.db, tileI, rows, V, i > 0);
    if (results.dh !== undefined) {
      const dh = lw.aliasNode({ op: 'matmul', operands: [tileI.id, wVD.id], ...at('dh'), type: f32([rows, d]) }, results.dh.id);
      emitMatmulInto(lw, dh, { address: (row, col) => add(mul(add(row, u32(r0)), u32(d)), col), accumulate: false }, { a: tileI, b: wVD });
    }
    if (results.dw !== undefined) {
      const hT = view(h, [d, rows], [...rowIndices(indexOp('add', idx(1), i32(r0))), idx(0)]);
      // The product is [d, V]; a [V, d] weight takes it transposed.
      const dw = lw.aliasNode({ op: 'matmul', operands: [hT.id, tileI.id], ...at('dw'), type: f32([d, V]) }, results.dw.id);
      const address = transposed ? (row: Expr, col: Expr): Expr => add(mul(col, u32(d)), row) : (row: Expr, col: Expr): Expr => add(mul(row, u32(V)), col);
      emitMatmulInto(lw, dw, { address, accumulate: i > 0 }, { a: hT, b: tileI });
    }
  }
  // The mean of the per-row losses into the op's own buffer.
  emitReduce(lw, { id: n.id, op: 'mean', operands: [lossRows.id], attrs: { axes: { kind: 'ints', value: [0] }, keepdims: { kind: 'bool', value: false } }, type: n.type, loc: n.loc, scope: `${scope}_loss` });
}

interface RowsArgs {
  readonly tile: Node;
  readonly targets: Node;
  readonly bias?: Node;
  readonly lossRows: Node;
  readonly r0: number;
  readonly rows: number;
  readonly V: number;
  readonly N: number;
  readonly gradient: boolean;
}

/**
 * One workgroup per row of the chunk: z = tile + bias, lse by online max and rescaled sums, the
 * target's logit by a third reduction (so every lane has read it before any lane overwrites the
 * tile), the row's loss into lossRows[r0 + row], then g = (exp(z - lse) - [j = target]) / N over the tile.
 */
function emitRows(lw: Lowering, n: Node, a: RowsArgs, schedule: KernelSchedule): void {
  const kb = new KernelBuilder();
  const tSlot = a.gradient ? kb.output('tile', a.tile.id, 'f32') : kb.input('tile', a.tile.id, 'f32');
  const ySlot = kb.input('targets', a.targets.id, a.targets.type.dtype);
  const bSlot = a.bias === undefined ? undefined : kb.input('bias', a.bias.id, a.bias.type.dtype);
  const lSlot = kb.output('loss_rows', a.lossRows.id, 'f32');
  const wg = lw.s.rowWorkgroupSize;
  const body: Stmt[] = [];
  const row = lw.linearWorkgroup(kb, body);
  const inner: Stmt[] = [];
  const Ve = u32(a.V);
  const base = kb.let(inner, 'base', mul(row, Ve));
  const target = kb.let(inner, 'target', load(ySlot, add(row, u32(a.r0)), storageType(a.targets.type.dtype)));
  const z = (out: Stmt[], j: Expr): Expr => {
    const x = cast('f32', load(tSlot, add(base, j), 'f32'));
    return kb.let(out, 'z', bSlot === undefined || a.bias === undefined ? x : bin('add', x, cast('f32', load(bSlot, j, storageType(a.bias.type.dtype)))));
  };
  const negInf = lit('f32', -Infinity);
  const mName = kb.var(inner, 'm', 'f32', negInf);
  const lName = kb.var(inner, 'l', 'f32', lit('f32', 0));
  const pName = kb.var(inner, 'picked', 'f32', lit('f32', 0));
  const m = v(mName, 'f32');
  const l = v(lName, 'f32');
  const isTarget = (j: Expr): Expr => bin('eq', cast('i32', j), target);
  inner.push(
    rowLoop(lw, kb, Ve, (loop, j) => {
      const zv = z(loop, j);
      const mn = kb.let(loop, 'mn', call('max', [m, zv], 'f32'));
      const upd = bin('add', bin('mul', l, call('exp', [bin('sub', m, mn)], 'f32')), call('exp', [bin('sub', zv, mn)], 'f32'));
      loop.push({ kind: 'assign', name: lName, value: select(bin('eq', mn, negInf), lit('f32', 0), upd) });
      loop.push({ kind: 'assign', name: mName, value: mn });
      loop.push({ kind: 'if', cond: isTarget(j), then: [{ kind: 'assign', name: pName, value: zv }], else: [] });
    }),
  );
  const rowMax = kb.let(inner, 'row_max', workgroupReduce(lw, kb, inner, m, 'max', 'mx'));
  const scaled = kb.let(inner, 'l_scaled', select(bin('eq', m, negInf), lit('f32', 0), bin('mul', l, call('exp', [bin('sub', m, rowMax)], 'f32'))));
  const rowSum = kb.let(inner, 'row_sum', workgroupReduce(lw, kb, inner, scaled, 'sum', 'sm'));
  // A target outside [0, V) picks nothing (0), as the unfused one-hot.
  const picked = kb.let(inner, 'target_logit', workgroupReduce(lw, kb, inner, v(pName, 'f32'), 'sum', 'pk'));
  const lse = kb.let(inner, 'lse', bin('add', rowMax, call('log', [rowSum], 'f32')));
  inner.push({ kind: 'if', cond: bin('eq', builtin('local_id', 0), u32(0)), then: [{ kind: 'store', slot: lSlot, index: add(row, u32(a.r0)), value: bin('sub', lse, picked) }], else: [] });
  if (a.gradient) {
    inner.push(
      rowLoop(lw, kb, Ve, (loop, j) => {
        const p = call('exp', [bin('sub', z(loop, j), lse)], 'f32');
        const g = bin('mul', bin('sub', p, select(isTarget(j), lit('f32', 1), lit('f32', 0))), lit('f32', 1 / a.N));
        loop.push({ kind: 'store', slot: tSlot, index: add(base, j), value: g });
      }),
    );
  }
  // `row` depends on the workgroup id only, so the reductions' barriers stay in uniform control flow.
  body.push({ kind: 'if', cond: lt(row, u32(a.rows)), then: inner, else: [] });
  const tileBytes = a.rows * a.V * 4;
  const biasBytes = a.bias === undefined ? 0 : a.rows * a.V * storageBytes(a.bias.type.dtype) * (a.gradient ? 2 : 1);
  const traffic = {
    bytesRead: sConst(tileBytes * (a.gradient ? 2 : 1) + biasBytes + a.rows * storageBytes(a.targets.type.dtype)),
    bytesWritten: sConst((a.gradient ? tileBytes : 0) + a.rows * 4),
    flops: sConst(a.rows * a.V * (a.gradient ? 9 : 5)),
  };
  lw.finish({ ...n, scope: `${n.scope ?? 'loss'}_ce` }, 'rows', kb, body, [wg, 1, 1], lw.linearGrid(sConst(a.rows)), schedule, traffic);
}

/** db[j] (+)= sum over the chunk's rows of g[r, j]: one thread per vocabulary entry, accumulated in place after the first chunk. */
function emitBiasGrad(lw: Lowering, db: Node, tile: Node, rows: number, V: number, accumulate: boolean): void {
  const kb = new KernelBuilder();
  const tSlot = kb.input('tile', tile.id, 'f32');
  const oSlot = kb.output('db', db.id, db.type.dtype);
  const wgSize = lw.s.mapWorkgroupSize;
  const body: Stmt[] = [];
  const wg = lw.linearWorkgroup(kb, body);
  const j = kb.let(body, 'j', add(mul(wg, u32(wgSize)), builtin('local_id', 0)));
  const inner: Stmt[] = [];
  const acc = kb.var(inner, 'acc', 'f32', accumulate ? cast('f32', load(oSlot, j, storageType(db.type.dtype))) : lit('f32', 0));
  const r = kb.fresh('r');
  inner.push({ kind: 'for', var: r, start: u32(0), end: u32(rows), step: u32(1), body: [{ kind: 'assign', name: acc, value: bin('add', v(acc, 'f32'), load(tSlot, add(mul(v(r, 'u32'), u32(V)), j), 'f32')) }] });
  inner.push({ kind: 'store', slot: oSlot, index: j, value: cast(storageType(db.type.dtype), v(acc, 'f32')) });
  body.push({ kind: 'if', cond: lt(j, u32(V)), then: inner, else: [] });
  const bytes = storageBytes(db.type.dtype);
  const traffic = { bytesRead: sConst(rows * V * 4 + (accumulate ? V * bytes : 0)), bytesWritten: sConst(V * bytes), flops: sConst(rows * V) };
  lw.finish({ ...db, scope: `${db.scope ?? 'loss'}_ce` }, 'db', kb, body, [wgSize, 1, 1], lw.linearGrid(sConst(Math.ceil(V / wgSize))), { kind: 'map', workgroupSize: wgSize }, traffic);
}
