// Learned score-mod tables in the fused attention backward (attention/backward.ts): the gradient
// of a table the score lambda reads (examples/variants/relative-bias.tfx's rel[clamp(k - q), h]),
// `fused_attention_grad_t` (src/ops/attention-grad.ts), without a T x S buffer and without float
// atomics (WGSL has none):
//   1. In the backward kernel's dK/dV role (which visits every live (b, h, q, k) exactly once),
//      each score element stores, per read site of a table, dZ * d score / d read into a value
//      tile and the entry it reads (its flat offset, past the tables before it) into an index
//      tile, next to the P and dS tiles.
//   2. After the barrier, every thread adds the tile elements that land on the table entries it
//      owns (entry e is thread e mod threads'): a deterministic, race-free scan of Br x Bc per
//      owned entry. The sums stay in registers (a private array) when each thread owns at most
//      PRIVATE_MAX entries, else in the workgroup's own row of the partials buffer (global memory,
//      read-modify-write by the owner only).
//   3. The role writes its workgroup's partial row: partials [workgroups of the dK/dV role, entries].
//   4. One small reduce kernel (`tableReduceKernel`) sums the rows per entry in workgroup order
//      and writes each table's gradient: FlashAttention-2 has a preprocessing kernel for the row
//      dot products D; this is the analogous postprocessing kernel for the table.
// Cost of step 2: entries x Br x Bc per key tile and query tile (fine for relative-position
// tables of a few hundred entries; a large table wants a sort-by-entry segmented sum).
import type { Graph, Node, ScalarExpr } from '../../graph/ir.js';
import { dimConstValue } from '../../base/dim.js';
import { tableGradOperands, tableSites } from '../../ops/attention-vjp.js';
import { lambdaOf as attrLambda } from './lambdas.js';
import { type Expr, type Stmt, add, arrayLoad, bin, builtin, cast, div, load, lt, mul, select, u32, v } from '../ir/ir.js';
import { KernelBuilder } from '../ir/builder.js';
import { dimExpr } from '../lower/dims.js';
import { storageType } from '../ir/storage.js';
import type { SizeExpr } from '../plan/plan.js';
import { dimToSize, sCeilDiv, sConst, sMul } from '../plan/to-size.js';
import type { AttentionKernelDraft, AttentionShape } from './node.js';
import { f32, forLoop } from './exprs.js';
import { type Compiled, lambdaExpr } from './lambdas.js';

/** Owned entries per thread kept in registers; more go to the workgroup's global partial row. */
export const PRIVATE_MAX = 16;
/** An index tile entry no table entry matches (a masked element, or a read outside its table). */
const NO_ENTRY = 0xffffffff;

interface Site {
  readonly operand: number;
  readonly indices: readonly ScalarExpr[];
  readonly adjoint: ScalarExpr;
  /** The table's shape (constant) and its first entry in the partial rows. */
  readonly shape: readonly number[];
  readonly offset: number;
}

export interface TableLayout {
  /** Per table with a gradient: its grad-op operand, first entry in the partial rows, entry count. */
  readonly tables: readonly { readonly operand: number; readonly offset: number; readonly numel: number }[];
  readonly sites: readonly Site[];
  /** Entries of all tables together: the width of a partial row. */
  readonly entries: number;
}

/** The tables of fused_attention_grad `n` with a gradient (`table_grads`) and the score lambda's read sites of them. */
export function tableLayout(g: Graph, n: Node): TableLayout | undefined {
  const operands = tableGradOperands(n.attrs);
  if (operands.length === 0) return undefined;
  let entries = 0;
  const tables = operands.map((operand) => {
    const t = g.nodes[n.operands[operand] ?? -1];
    const shape = t?.type.shape.map(dimConstValue);
    if (shape === undefined || shape.some((d) => d === undefined)) throw new Error(`internal: fused_attention_grad table operand ${operand} has no constant shape`);
    const dims = shape as number[];
    const numel = dims.reduce((a, d) => a * d, 1);
    const r = { operand, offset: entries, numel, shape: dims };
    entries += numel;
    return r;
  });
  const sites = tableSites(attrLambda(n, 'score'), operands).map((s) => {
    const t = tables.find((x) => x.operand === s.operand);
    if (t === undefined) throw new Error(`internal: table site of operand ${s.operand}`);
    return { ...s, shape: t.shape, offset: t.offset };
  });
  return { tables: tables.map(({ operand, offset, numel }) => ({ operand, offset, numel })), sites, entries };
}

/** Br x Bc workgroup arrays the tables add to the backward kernel (a value and an index tile per site): the schedule's fit. */
export function tableTileArrays(g: Graph, n: Node): number {
  return 2 * (tableLayout(g, n)?.sites.length ?? 0);
}

/** The dK/dV role's part of the table gradient (steps 1 to 3 of the header), built into the backward kernel. */
export class TableAccumulator {
  private readonly values: string[];
  private readonly indices: string[];
  private readonly owned: number;
  private readonly inRegisters: boolean;
  private acc = '';
  private rowBase: Expr = u32(0);

  constructor(
    private readonly kb: KernelBuilder,
    private readonly comp: Compiled,
    private readonly g: Graph,
    private readonly n: Node,
    private readonly layout: TableLayout,
    private readonly tile: number, // Br * Bc
    private readonly threads: number,
    private readonly partialSlot: number,
  ) {
    this.values = layout.sites.map(() => kb.sharedArray('tv_tile', 'f32', tile));
    this.indices = layout.sites.map(() => kb.sharedArray('ti_tile', 'u32', tile));
    this.owned = Math.ceil(layout.entries / threads);
    this.inRegisters = this.owned <= PRIVATE_MAX;
  }

  /** At the role's start: the workgroup's partial row (`workgroup` its index among the role's workgroups) and zeroed sums. */
  begin(out: Stmt[], workgroup: Expr): void {
    this.rowBase = this.kb.let(out, 'tab_row', mul(workgroup, u32(this.layout.entries)));
    if (this.inRegisters) {
      this.acc = this.kb.fresh('acc_t');
      out.push({ kind: 'private_array', name: this.acc, type: 'f32', length: this.owned, init: f32(0) });
    } else {
      this.forOwned(out, (_m, e, body) => body.push({ kind: 'store', slot: this.partialSlot, index: add(this.rowBase, e), value: f32(0) }));
    }
  }

  /** Step 1, per score element: its value dZ * adjoint and its table entry into the tiles at `at` (p = 0: nothing). */
  storeElement(out: Stmt[], at: Expr, idx: readonly Expr[], s: Expr, p: Expr, dz: Expr): void {
    const none = bin('eq', p, f32(0));
    this.layout.sites.forEach((site, j) => {
      const adj = cast('f32', lambdaExpr(this.comp, this.g, this.n, out, site.adjoint, idx, s));
      // The flat offset as the forward's read computes it (lambdas.ts: u32 indices times strides).
      let flat: Expr = u32(0);
      let stride = 1;
      for (let d = site.shape.length - 1; d >= 0; d--) {
        const ix = site.indices[d];
        if (ix !== undefined) flat = add(flat, mul(cast('u32', lambdaExpr(this.comp, this.g, this.n, out, ix, idx, s)), u32(stride)));
        stride *= site.shape[d] ?? 1;
      }
      const f = this.kb.let(out, 'tflat', flat);
      const entry = select(bin('or', none, bin('ge', f, u32(stride))), u32(NO_ENTRY), add(f, u32(site.offset)));
      out.push({ kind: 'array_store', array: this.values[j] ?? '', index: at, value: select(none, f32(0), bin('mul', dz, adj)) });
      out.push({ kind: 'array_store', array: this.indices[j] ?? '', index: at, value: entry });
    });
  }

  /** Step 2, by every thread between the barriers after the tiles: the tile elements on its owned entries added. */
  accumulate(out: Stmt[]): void {
    this.forOwned(out, (m, e, body) => {
      const a = this.kb.var(body, 'ta', 'f32', this.inRegisters ? arrayLoad(this.acc, m, 'f32') : load(this.partialSlot, add(this.rowBase, e), 'f32'));
      this.layout.sites.forEach((_, j) => {
        const i = this.kb.fresh('ti');
        const at = v(i, 'u32');
        const hit = bin('eq', arrayLoad(this.indices[j] ?? '', at, 'u32'), e);
        body.push(forLoop(i, u32(0), u32(this.tile), u32(1), [{ kind: 'assign', name: a, value: bin('add', v(a, 'f32'), select(hit, arrayLoad(this.values[j] ?? '', at, 'f32'), f32(0))) }]));
      });
      body.push(this.inRegisters ? { kind: 'array_store', array: this.acc, index: m, value: v(a, 'f32') } : { kind: 'store', slot: this.partialSlot, index: add(this.rowBase, e), value: v(a, 'f32') });
    });
  }

  /** Step 3, at the role's end: the registers' sums into the workgroup's partial row (already there when in global memory). */
  finish(out: Stmt[]): void {
    if (!this.inRegisters) return;
    this.forOwned(out, (m, e, body) => body.push({ kind: 'store', slot: this.partialSlot, index: add(this.rowBase, e), value: arrayLoad(this.acc, m, 'f32') }));
  }

  /** `body(m, e, stmts)` for each owned entry e = local_index + m * threads below the entry count. */
  private forOwned(out: Stmt[], body: (m: Expr, e: Expr, stmts: Stmt[]) => void): void {
    const m = this.kb.fresh('tm');
    const lb: Stmt[] = [];
    const e = this.kb.let(lb, 'te', add(builtin('local_index'), mul(v(m, 'u32'), u32(this.threads))));
    const inner: Stmt[] = [];
    body(v(m, 'u32'), e, inner);
    lb.push({ kind: 'if', cond: lt(e, u32(this.layout.entries)), then: inner, else: [] });
    out.push(forLoop(m, u32(0), u32(this.owned), u32(1), lb));
  }
}

/** Rows of the partials buffer: the dK/dV role's workgroups, ceil(S / Bc) key tiles x Hkv x B. */
export function partialRows(shape: AttentionShape, Bc: number): SizeExpr {
  return sMul(sCeilDiv(dimToSize(shape.S), Bc), dimToSize(shape.Hkv), dimToSize(shape.B));
}

/**
 * Step 4: one thread per table entry sums its column of the partial rows (in row order:
 * deterministic) and writes the entry of its table's gradient (`results`: by table operand).
 */
export function tableReduceKernel(layout: TableLayout, partial: Node, results: ReadonlyMap<number, Node>, shape: AttentionShape, Bc: number): AttentionKernelDraft {
  const WG = 64;
  const kb = new KernelBuilder();
  const pS = kb.slot('partials', partial.id, 'read', 'f32');
  const outSlots = layout.tables.map((t) => {
    const r = results.get(t.operand);
    if (r === undefined) throw new Error(`internal: no gradient buffer for table operand ${t.operand}`);
    return { ...t, slot: kb.slot(`d_t${t.operand}`, r.id, 'read_write', storageType(r.type.dtype)), node: r };
  });
  const body: Stmt[] = [];
  const e = kb.let(body, 'e', add(mul(builtin('workgroup_id', 0), u32(WG)), builtin('local_index')));
  const inner: Stmt[] = [];
  const S = dimExpr(shape.S);
  const rows = kb.let(inner, 'rows', mul(mul(div(add(S, u32(Bc - 1)), u32(Bc)), dimExpr(shape.Hkv)), dimExpr(shape.B)));
  const sum = kb.var(inner, 'sum', 'f32', f32(0));
  const w = kb.fresh('w');
  inner.push(forLoop(w, u32(0), rows, u32(1), [{ kind: 'assign', name: sum, value: bin('add', v(sum, 'f32'), load(pS, add(mul(v(w, 'u32'), u32(layout.entries)), e), 'f32')) }]));
  for (const t of outSlots) {
    const below = lt(e, u32(t.offset + t.numel));
    const inTable = t.offset === 0 ? below : bin('and', bin('ge', e, u32(t.offset)), below); // (no `e >= 0u`: nvcc warns)
    inner.push({ kind: 'if', cond: inTable, then: [{ kind: 'store', slot: t.slot, index: bin('sub', e, u32(t.offset)), value: cast(storageType(t.node.type.dtype), v(sum, 'f32')) }], else: [] });
  }
  body.push({ kind: 'if', cond: lt(e, u32(layout.entries)), then: inner, else: [] });
  const rowsSize = partialRows(shape, Bc);
  const entries = sConst(layout.entries);
  return {
    op: 'attention_table_reduce',
    workgroupSize: [WG, 1, 1],
    grid: [sConst(Math.ceil(layout.entries / WG)), sConst(1), sConst(1)],
    buffers: kb.buffers,
    shared: kb.shared,
    body,
    schedule: { kind: 'map', workgroupSize: WG },
    traffic: { bytesRead: sMul(rowsSize, entries, sConst(4)), bytesWritten: sMul(entries, sConst(4)), flops: sMul(rowsSize, entries) },
    bindings: kb.bindings,
  };
}
