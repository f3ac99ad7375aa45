// The flash-decoding combine kernel (attention/attention.ts's split-K decode path): merges the
// partitions' (max, sum, accumulator) rows written by attention/kernel.ts in split mode.
import { dimConstValue } from '../../base/dim.js';
import { type Expr, type Stmt, add, bin, builtin, call, cast, div, load, lt, mul, rem, select, u32, v } from '../ir/ir.js';
import { KernelBuilder } from '../ir/builder.js';
import { dimExpr } from '../lower/dims.js';
import { storageBytes, storageType } from '../ir/storage.js';
import { dimToSize, sAdd, sCeilDiv, sConst, sMul } from '../plan/to-size.js';
import type { AttentionSchedule } from './schedule.js';
import { type AttentionInput, type AttentionKernelDraft, lseBytes, lseValue } from './node.js';
import { f32, fmax, forLoop, NEG_INF } from './exprs.js';

/** The flash-decoding combine: out[row, j] = sum_p w_p acc_p[j] / sum_p w_p l_p, w_p = exp(m_p - max m). */
export function combineKernel(inp: AttentionInput, s: AttentionSchedule, tempId: number): AttentionKernelDraft {
  const n = inp.node;
  const [B, Hq, T, dvD] = n.type.shape;
  const dv = dvD === undefined ? undefined : dimConstValue(dvD);
  if (B === undefined || Hq === undefined || T === undefined || dv === undefined) throw new Error('internal: fused_attention result must be [B, Hq, T, dv]');
  const kb = new KernelBuilder();
  const pSlot = kb.slot('part', tempId, 'read', 'f32');
  const oSlot = kb.slot('out', n.id, 'read_write', storageType(n.type.dtype));
  const wg = 64;
  const body: Stmt[] = [];
  const total = mul(mul(mul(dimExpr(B), dimExpr(Hq)), dimExpr(T)), u32(dv));
  const flat = kb.let(body, 'flat', add(mul(builtin('workgroup_id', 0), u32(wg)), builtin('local_id', 0)));
  const inner: Stmt[] = [];
  const row = kb.let(inner, 'row', div(flat, u32(dv)));
  const j = kb.let(inner, 'j', rem(flat, u32(dv)));
  const at = (p: Expr, k: Expr): Expr => add(mul(add(mul(row, u32(s.splits)), p), u32(dv + 2)), k);
  const m = kb.var(inner, 'm', 'f32', NEG_INF);
  const p1 = kb.fresh('p');
  inner.push(forLoop(p1, u32(0), u32(s.splits), u32(1), [{ kind: 'assign', name: m, value: fmax(v(m, 'f32'), load(pSlot, at(v(p1, 'u32'), u32(dv)), 'f32')) }]));
  const num = kb.var(inner, 'num', 'f32', f32(0));
  const den = kb.var(inner, 'den', 'f32', f32(0));
  const p2 = kb.fresh('p');
  const lb: Stmt[] = [];
  const mp = kb.let(lb, 'mp', load(pSlot, at(v(p2, 'u32'), u32(dv)), 'f32'));
  // A partition that saw only masked keys (m = -inf) weighs 0 (exp(-inf - -inf) would be NaN).
  const w = kb.let(lb, 'w', select(bin('eq', mp, NEG_INF), f32(0), call('exp', [bin('sub', mp, v(m, 'f32'))], 'f32')));
  lb.push({ kind: 'assign', name: num, value: bin('add', v(num, 'f32'), bin('mul', w, load(pSlot, at(v(p2, 'u32'), j), 'f32'))) });
  lb.push({ kind: 'assign', name: den, value: bin('add', v(den, 'f32'), bin('mul', w, load(pSlot, at(v(p2, 'u32'), u32(dv + 1)), 'f32'))) });
  inner.push(forLoop(p2, u32(0), u32(s.splits), u32(1), lb));
  inner.push({ kind: 'store', slot: oSlot, index: flat, value: cast(storageType(n.type.dtype), select(bin('eq', v(den, 'f32'), f32(0)), f32(0), bin('div', v(num, 'f32'), v(den, 'f32')))) });
  if (inp.lse !== undefined) {
    // The row's log-sum-exp: max over partitions m plus log of the rescaled sum, by column 0's thread.
    const lseSlot = kb.slot('lse', inp.lse.id, 'read_write', storageType(inp.lse.type.dtype));
    const value = cast(storageType(inp.lse.type.dtype), lseValue(v(m, 'f32'), v(den, 'f32')));
    inner.push({ kind: 'if', cond: bin('eq', j, u32(0)), then: [{ kind: 'store', slot: lseSlot, index: row, value }], else: [] });
  }
  body.push({ kind: 'if', cond: lt(flat, total), then: inner, else: [] });
  const elems = sMul(dimToSize(B), dimToSize(Hq), dimToSize(T), sConst(dv));
  const outWritten = sMul(elems, sConst(storageBytes(n.type.dtype)));
  const lseWritten = lseBytes(inp);
  return {
    op: 'fused_attention_combine',
    workgroupSize: [wg, 1, 1],
    grid: [sCeilDiv(elems, wg), sConst(1), sConst(1)],
    buffers: kb.buffers,
    shared: kb.shared,
    body,
    schedule: { kind: 'map', workgroupSize: wg },
    // Each output element reads every partition's max, sum and its own accumulator (max twice).
    traffic: { bytesRead: sMul(elems, sConst(s.splits * 4 * 4)), bytesWritten: lseWritten === undefined ? outWritten : sAdd(outWritten, lseWritten), flops: sMul(elems, sConst(s.splits * 6)) },
    bindings: kb.bindings,
  };
}
