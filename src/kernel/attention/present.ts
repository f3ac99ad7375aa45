// The split-K decode kernel's cache write (attention/kernel.ts): a fused_attention's K/V results
// (fused_attention_k / _v, a KV cache's present = concat(past, new) made by
// src/passes/fuse-cache-write.ts) written by the attention kernel itself, so the decode step has
// no K or V write kernel. Partition `part` writes the cache rows of its key range as the load
// lambda computes them (past rows read from past, the new row from the projection), all of
// them whatever the mask lets it skip (a sliding window still writes the whole present); only
// the first query tile's workgroup of the KV head's first query head writes (GQA: one of the
// group), so each element is written once.
import { dimConstValue } from '../../base/dim.js';
import { type Expr, type Stmt, add, and, bin, cast, div, lt, mul, rem, u32, v } from '../ir/ir.js';
import type { KernelBuilder } from '../ir/builder.js';
import { storageBytes, storageType } from '../ir/storage.js';
import type { SizeExpr } from '../plan/plan.js';
import { dimToSize, sAdd, sConst, sMul } from '../plan/to-size.js';
import { attentionLoads } from '../../ops/attention.js';
import { forLoop } from './exprs.js';
import { lambdaExpr, lambdaOf, loadBytesOf } from './lambdas.js';
import type { AttentionInput } from './node.js';

/** The split kernel's workgroup coordinates the write needs (attention/kernel.ts's lets). */
export interface PresentCoords {
  readonly b: Expr;
  readonly h: Expr; // the workgroup's first query head
  readonly hk: Expr; // its KV head
  readonly q0: Expr; // its first tile row (0: the first query tile)
  readonly part: Expr; // its cache partition
  readonly kvRow0: Expr; // row of (b, hk, 0) in [B, Hkv, S]
  readonly S: Expr;
  readonly group: Expr; // query heads per KV head
  readonly Bc: number; // keys per tile: partitions are whole tiles (sparsity.ts tileLogic)
  readonly splits: number;
  readonly threads: number;
  readonly lid: Expr;
}

/**
 * Appends the write of `inp.present`'s K and V (each [B, Hkv, S, width]) to `body`; returns the
 * bytes it reads and writes, or undefined when the node has no such result.
 */
export function presentWrite(
  inp: AttentionInput,
  kb: KernelBuilder,
  slotOf: (operand: number) => number,
  body: Stmt[],
  c: PresentCoords,
): { readonly read: SizeExpr; readonly written: SizeExpr } | undefined {
  const { graph: g, node: n } = inp;
  const results = (['k', 'v'] as const).flatMap((which) => {
    const r = inp.present?.[which];
    return r === undefined ? [] : [{ which, r }];
  });
  if (results.length === 0) return undefined;
  const write: Stmt[] = [];
  // Keys of one partition: ceil(ceil(S / Bc) / splits) tiles, as tileLogic's `chunk`.
  const chunkKeys = kb.let(write, 'cache_chunk', mul(div(add(div(add(c.S, u32(c.Bc - 1)), u32(c.Bc)), u32(c.splits - 1)), u32(c.splits)), u32(c.Bc)));
  const first = kb.let(write, 'cache_first', mul(c.part, chunkKeys));
  const reads: SizeExpr[] = [];
  const writes: SizeExpr[] = [];
  for (const { which, r } of results) {
    const l = lambdaOf(n, attentionLoads[which].load);
    if (l === undefined) throw new Error(`internal: fused_attention_${which} needs the attention's ${attentionLoads[which].load}`);
    const [B, Hkv, S, W] = r.type.shape;
    const width = W === undefined ? undefined : dimConstValue(W);
    if (B === undefined || Hkv === undefined || S === undefined || width === undefined)
      throw new Error(`internal: fused_attention_${which} must be [B, Hkv, S, d] with a constant d`);
    const slot = kb.slot(`present_${which}`, r.id, 'read_write', storageType(r.type.dtype));
    const e = kb.fresh('e');
    const lb: Stmt[] = [];
    const kk = kb.let(lb, 'kk', add(first, div(v(e, 'u32'), u32(width))));
    const d = kb.let(lb, 'd', rem(v(e, 'u32'), u32(width)));
    const st: Stmt[] = [];
    const x = cast(storageType(r.type.dtype), lambdaExpr({ kb, slotOf }, g, n, st, l, [c.b, c.hk, kk, d], undefined, true));
    st.push({
      kind: 'store',
      slot,
      index: add(mul(add(c.kvRow0, kk), u32(width)), d),
      value: x,
    });
    lb.push({ kind: 'if', cond: lt(kk, c.S), then: st, else: [] });
    write.push(forLoop(e, c.lid, mul(chunkKeys, u32(width)), u32(c.threads), lb));
    const rows = sMul(dimToSize(B), dimToSize(Hkv), dimToSize(S));
    const lb2 = loadBytesOf(g, n, l, width);
    reads.push(sMul(rows, sConst(lb2.perRow)));
    writes.push(sMul(rows, sConst(width * storageBytes(r.type.dtype))));
  }
  body.push({
    kind: 'if',
    cond: and(bin('eq', c.q0, u32(0)), bin('eq', rem(c.h, c.group), u32(0))),
    then: write,
    else: [],
  });
  return { read: sAdd(...reads), written: sAdd(...writes) };
}
