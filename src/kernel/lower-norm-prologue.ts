// The norm prologue of a tiled fused_matmul (fuse-norm): before the K loop, each workgroup
// computes the mean and 1/std of its TM rows of A (one thread per row, shifted sums as in the
// plain layernorm kernel so E[x^2] - E[x]^2 does not cancel) into workgroup arrays; the A tile
// staging then normalizes each element as it is loaded. The normalized A never reaches memory.
import type { Graph, Node } from '../graph/ir.js';
import { type Expr, type Stmt, add, arrayLoad, bin, builtin, call, cast, load, lit, lt, mul, u32, v } from './ir.js';
import { storageType } from './storage.js';

interface PrologueBuilder {
  input(role: string, value: number, dtype: Node['type']['dtype']): number;
  sharedArray(prefix: string, type: 'f32', length: number): string;
  fresh(prefix: string): string;
  let(out: Stmt[], prefix: string, init: Expr): Expr;
}

export interface NormPrologueInput {
  readonly kb: PrologueBuilder;
  /** Kernel body; the statistics are appended here (before the K loop). */
  readonly body: Stmt[];
  readonly g: Graph;
  readonly n: Node;
  readonly norm: { readonly op: 'layernorm' | 'rmsnorm'; readonly params: number; readonly eps: number };
  readonly a: Node;
  readonly aOff: Expr;
  readonly row0: () => Expr;
  readonly M: Expr;
  readonly K: Expr;
  readonly TM: number;
  readonly threads: number;
}

/** Emits the row statistics; returns the per-element normalization for the A staging. */
export function normPrologue(p: NormPrologueInput): { readonly normalize: (x: Expr, r: Expr, k: Expr) => Expr } {
  const { kb, body, n, norm, a, TM } = p;
  const isLayer = norm.op === 'layernorm';
  const param = (i: number): Node => {
    const node = p.g.nodes[n.operands[n.operands.length - norm.params + i] ?? -1];
    if (node === undefined) throw new Error('internal: fused_matmul lacks its norm parameters');
    return node;
  };
  const gamma = param(0);
  const beta = isLayer ? param(1) : undefined;
  const aSlot = kb.input('x', a.id, a.type.dtype);
  const gSlot = kb.input('gamma', gamma.id, gamma.type.dtype);
  const bSlot = beta === undefined ? -1 : kb.input('beta', beta.id, beta.type.dtype);
  const meanArr = kb.sharedArray('row_mean', 'f32', TM);
  const rstdArr = kb.sharedArray('row_rstd', 'f32', TM);
  const xt = storageType(a.type.dtype);
  const e = kb.fresh('e');
  const ev = v(e, 'u32');
  const lb: Stmt[] = [];
  const gr = kb.let(lb, 'gr', add(p.row0(), ev));
  const mean = kb.fresh('mean');
  const rstd = kb.fresh('rstd');
  lb.push({ kind: 'var', name: mean, type: 'f32', init: lit('f32', 0) });
  lb.push({ kind: 'var', name: rstd, type: 'f32', init: lit('f32', 1) });
  const inRow: Stmt[] = [];
  const base = kb.let(inRow, 'base', add(p.aOff, mul(gr, p.K)));
  const count = kb.let(inRow, 'count', cast('f32', p.K));
  const j = kb.fresh('j');
  const jv = v(j, 'u32');
  const x = (idx: Expr): Expr => cast('f32', load(aSlot, idx, xt));
  const s1 = kb.fresh('s1');
  const s2 = kb.fresh('s2');
  inRow.push({ kind: 'var', name: s1, type: 'f32', init: lit('f32', 0) });
  inRow.push({ kind: 'var', name: s2, type: 'f32', init: lit('f32', 0) });
  if (isLayer) {
    const shift = kb.let(inRow, 'shift', x(base));
    const loop: Stmt[] = [];
    const d = kb.let(loop, 'd', bin('sub', x(add(base, jv)), shift));
    loop.push({ kind: 'assign', name: s1, value: bin('add', v(s1, 'f32'), d) });
    loop.push({ kind: 'assign', name: s2, value: bin('add', v(s2, 'f32'), bin('mul', d, d)) });
    inRow.push({ kind: 'for', var: j, start: u32(0), end: p.K, step: u32(1), body: loop });
    const md = kb.let(inRow, 'mean_d', bin('div', v(s1, 'f32'), count));
    const variance = kb.let(inRow, 'variance', call('max', [bin('sub', bin('div', v(s2, 'f32'), count), bin('mul', md, md)), lit('f32', 0)], 'f32'));
    inRow.push({ kind: 'assign', name: mean, value: bin('add', shift, md) });
    inRow.push({ kind: 'assign', name: rstd, value: call('rsqrt', [bin('add', variance, lit('f32', norm.eps))], 'f32') });
  } else {
    const loop: Stmt[] = [];
    const xv = kb.let(loop, 'xv', x(add(base, jv)));
    loop.push({ kind: 'assign', name: s2, value: bin('add', v(s2, 'f32'), bin('mul', xv, xv)) });
    inRow.push({ kind: 'for', var: j, start: u32(0), end: p.K, step: u32(1), body: loop });
    inRow.push({ kind: 'assign', name: rstd, value: call('rsqrt', [bin('add', bin('div', v(s2, 'f32'), count), lit('f32', norm.eps))], 'f32') });
  }
  lb.push({ kind: 'if', cond: lt(gr, p.M), then: inRow, else: [] });
  lb.push({ kind: 'array_store', array: meanArr, index: ev, value: v(mean, 'f32') });
  lb.push({ kind: 'array_store', array: rstdArr, index: ev, value: v(rstd, 'f32') });
  body.push({ kind: 'comment', text: `${norm.op} prologue: mean and 1/std of this tile's rows of A` });
  body.push({ kind: 'for', var: e, start: builtin('local_index'), end: u32(TM), step: u32(p.threads), body: lb });
  body.push({ kind: 'barrier' });
  return {
    normalize: (xv, r, k) => {
      const centered = isLayer ? bin('sub', xv, arrayLoad(meanArr, r, 'f32')) : xv;
      let y = bin('mul', bin('mul', centered, arrayLoad(rstdArr, r, 'f32')), cast('f32', load(gSlot, k, storageType(gamma.type.dtype))));
      if (beta !== undefined) y = bin('add', y, cast('f32', load(bSlot, k, storageType(beta.type.dtype))));
      return y;
    },
  };
}
