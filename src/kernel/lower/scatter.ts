// scatter(dest, index, values): one thread per element of `values` (a buffer, or a view read
// through its map) stores it at the flat offset index[i] of the result. The result is written IN
// PLACE, in dest's own buffer, when nothing reads
// that buffer after the scatter (no later user of dest or of a view of it, not a graph output, not
// a weight): a paged KV cache's write then costs the new tokens, not a copy of the pool, and when
// dest is a graph input the plan's output is that input's buffer (the runtime hands it back
// without a copy). Otherwise a copy kernel fills the result from dest first.
// An index outside [0, numel(dest)) is dropped (the interpreter reports it: TFC309); of two equal
// indices one store wins, unspecified which.
import type { Node } from '../../graph/ir.js';
import { type Expr, type Stmt, add, builtin, cast, load, lt, mul, u32 } from '../ir/ir.js';
import { KernelBuilder } from '../ir/builder.js';
import { computeType, storageType } from '../ir/storage.js';
import { sAdd, sCeilDiv, sConst, shapeElements } from '../plan/to-size.js';
import { bytesOf } from '../analysis/traffic.js';
import { dimExpr, productExpr } from './dims.js';
import { elementOffset, unravel } from './view.js';
import { emitMap } from './map.js';
import type { Lowering } from './lowering.js';

/**
 * Whether `n` may overwrite its dest's buffer: every other reader of that buffer is lowered before
 * it (node order is kernel order), and no graph output shows the buffer's old contents.
 */
export function scatterInPlace(lw: Lowering, n: Node): boolean {
  const root = lw.storage.get(lw.operand(n, 0).id);
  if (root === undefined || root === 'folded') return false;
  if (lw.g.nodes[root]?.op === 'weight') return false; // weights are shared by every run
  // Values held in that buffer: nodes already lowered onto it, and later views/reshapes of them.
  const alias = new Set<number>();
  for (const m of lw.g.nodes) {
    if (m.id < n.id) {
      if (lw.storage.get(m.id) === root) alias.add(m.id);
    } else if (m.id > n.id && (m.op === 'reshape' || m.op === 'view') && alias.has(m.operands[0] ?? -1)) alias.add(m.id);
  }
  const readLater = lw.g.nodes.some((m) => m.id > n.id && m.op !== 'reshape' && m.op !== 'view' && m.operands.some((o) => alias.has(o)));
  return !readLater && !lw.g.outputs.some((o) => alias.has(o.value));
}

export function emitScatter(lw: Lowering, n: Node): void {
  const dest = lw.operand(n, 0);
  const index = lw.operand(n, 1);
  const values = lw.operand(n, 2);
  const dtype = n.type.dtype;
  if (scatterInPlace(lw, n)) {
    const root = lw.storage.get(dest.id);
    if (typeof root === 'number') lw.storage.set(n.id, root);
  } else {
    // The result is a buffer of its own: dest copied in, then the scatter's stores.
    const kb = new KernelBuilder();
    const bytes = bytesOf(shapeElements(n.type.shape), dtype);
    emitMap(
      lw,
      n,
      'scatter_copy',
      kb,
      false,
      (body, _idx, flat) => {
        const folded = lw.storage.get(dest.id) === 'folded' ? lw.constLiteral(dest) : undefined;
        return folded ?? kb.let(body, 'x', cast(computeType(dtype), load(kb.input('dest', dest.id, dtype), flat, storageType(dtype))));
      },
      { bytesRead: bytes, bytesWritten: bytes, flops: sConst(0) },
    );
  }

  const kb = new KernelBuilder();
  const wgSize = lw.s.mapWorkgroupSize;
  const body: Stmt[] = [];
  const wg = lw.linearWorkgroup(kb, body);
  const flat = kb.let(body, 'flat', add(mul(wg, u32(wgSize)), builtin('local_id', 0)));
  const inner: Stmt[] = [];
  const indexSlot = kb.input('index', index.id, index.type.dtype);
  // A negative i32 offset becomes a huge u32: one unsigned compare drops both ends.
  const at = kb.let(inner, 'at', cast('u32', load(indexSlot, flat, storageType(index.type.dtype))));
  const valueOf = (): Expr => {
    if (lw.storage.get(values.id) === 'folded') return lw.constLiteral(values);
    // A view (fold-views: a paged cache's new rows read straight out of the projection's output)
    // is read through its map at the element's index.
    const at = values.op === 'view' ? elementOffset(lw.g, values, unravel(values.type.shape, flat, dimExpr), dimExpr) : flat;
    return load(kb.input('values', values.id, values.type.dtype), at, storageType(values.type.dtype));
  };
  const value = kb.let(inner, 'value', cast(computeType(dtype), valueOf()));
  const outSlot = kb.output('out', n.id, dtype);
  inner.push({ kind: 'if', cond: lt(at, productExpr(n.type.shape)), then: [{ kind: 'store', slot: outSlot, index: at, value: cast(storageType(dtype), value) }], else: [] });
  body.push({ kind: 'if', cond: lt(flat, productExpr(values.type.shape)), then: inner, else: [] });
  const count = shapeElements(values.type.shape);
  const stored = bytesOf(count, dtype);
  lw.finish(n, 'scatter', kb, body, [wgSize, 1, 1], lw.linearGrid(sCeilDiv(count, wgSize)), { kind: 'map', workgroupSize: wgSize }, {
    bytesRead: sAdd(bytesOf(count, index.type.dtype), stored),
    bytesWritten: stored,
    flops: sConst(0),
  });
}
