// split-large-weights: a weight larger than one storage binding (WebGPU: 128 MiB; GPT-2 small's
// wte is 50257x768 f32 = 147 MiB) becomes row chunks, each a `weight` node reading rows
// [start, end) of the same safetensors tensor, and its users are rewritten to work per chunk.
//
//   before                                              after (two chunks of 3 rows)
//   %1 = weight {name="wte"} : f32[6,4]                 %1 = weight {name="wte", rows=[0,3], total_rows=6} : f32[3,4]
//                                                       %2 = weight {name="wte", rows=[3,6], total_rows=6} : f32[3,4]
//   %2 = gather %1, %0 : f32[T,4]                       gather per chunk at clamp(ids - start, 0, rows - 1), then
//                                                         where(reshape(ids >= 3, [T,1]), gather(%2, ..), gather(%1, ..))
//   %3 = permute %1 {perm=[1,0]} : f32[4,6]             permute per chunk
//   %4 = matmul %x, %3 : f32[T,6]                       concat(x @ permute(%1), x @ permute(%2), axis=-1) (rows are N)
//   %5 = matmul %y, %1 : f32[T,4]  (y: f32[T,6])        slice(y, 0, 3) @ %1 + slice(y, 3, 6) @ %2     (rows are K)
//   %6 = matmul %1, %z                                  concat(%1 @ z, %2 @ z, axis=-2)              (rows are M)
//
// Any other use (an output, an elementwise op, a permute used by something other than a matmul)
// would need the whole tensor in one binding: TFC401 names the weight and the use. A single row
// above the limit is TFC401 too. Needs: shapes inferred, before fusion (fused ops are not
// rewritten). Keeps: every other node; the weight's safetensors name (the model's interface).
// Reads the limit from PassContext.maxBindingBytes; without one it does nothing (interp, cuda).
import { dimConst, dimConstValue } from '../base/dim.js';
import { diag } from '../diag/diagnostic.js';
import { type Attrs, type Graph, type Node, attr, intsAttr } from '../graph/ir.js';
import { DefUse, GraphBuilder } from '../graph/rewrite.js';
import { type TensorType, printType, storageBytes } from '../graph/types.js';
import { getOp } from '../ops/catalog.js';
import type { GraphPass, PassContext } from './pass.js';

interface Chunk {
  readonly start: number;
  readonly end: number;
}

/** Bytes a buffer of `elements` takes (rounded up to 4, as the runtime allocates). */
function bufferBytes(t: TensorType, elements: number): number {
  return Math.ceil((elements * storageBytes(t.dtype)) / 4) * 4;
}

function constShape(t: TensorType): number[] | undefined {
  const out: number[] = [];
  for (const d of t.shape) {
    const v = dimConstValue(d);
    if (v === undefined) return undefined;
    out.push(v);
  }
  return out;
}

/** Even row chunks, each within `limit` bytes; undefined when one row is over the limit. */
export function rowChunks(t: TensorType, limit: number): Chunk[] | undefined {
  const shape = constShape(t);
  if (shape === undefined || shape.length === 0) return undefined;
  const rows = shape[0] ?? 0;
  const row = shape.slice(1).reduce((a, b) => a * b, 1);
  if (bufferBytes(t, row) > limit) return undefined;
  let n = Math.max(1, Math.ceil(bufferBytes(t, rows * row) / limit));
  while (bufferBytes(t, Math.ceil(rows / n) * row) > limit) n++;
  const per = Math.ceil(rows / n);
  const out: Chunk[] = [];
  for (let s = 0; s < rows; s += per) out.push({ start: s, end: Math.min(s + per, rows) });
  return out;
}

type Use = { kind: 'gather' | 'k' | 'm' | 'n-permute' | 'n-matmul'; user: Node };

function isSwap(n: Node): boolean {
  const p = intsAttr(n, 'perm');
  return p.length === 2 && p[0] === 1 && p[1] === 0;
}

/** How each use of a large weight is rewritten, or a reason it cannot be. */
function classifyUses(w: Node, du: DefUse): Use[] | string {
  const out: Use[] = [];
  if (du.isOutput(w.id)) return 'it is a graph output';
  const rank = w.type.shape.length;
  for (const u of du.distinctUsers(w.id)) {
    if (u.op === 'gather' && u.operands[0] === w.id && u.operands[1] !== w.id) out.push({ kind: 'gather', user: u });
    else if (u.op === 'matmul' && rank === 2 && u.operands[1] === w.id && u.operands[0] !== w.id) out.push({ kind: 'k', user: u });
    else if (u.op === 'matmul' && rank === 2 && u.operands[0] === w.id && u.operands[1] !== w.id) out.push({ kind: 'm', user: u });
    else if (u.op === 'permute' && rank === 2 && isSwap(u)) {
      if (du.isOutput(u.id)) return `its transpose (%${u.id}) is a graph output`;
      out.push({ kind: 'n-permute', user: u });
      for (const v of du.distinctUsers(u.id)) {
        if (v.op === 'matmul' && v.operands[1] === u.id && v.operands[0] !== u.id) out.push({ kind: 'n-matmul', user: v });
        else return `its transpose (%${u.id}) is used by ${v.op} %${v.id} at ${v.loc.file}:${v.loc.line}:${v.loc.col} (only 'x @ transpose(w)' splits)`;
      }
    } else {
      return `it is used by ${u.op} %${u.id} at ${u.loc.file}:${u.loc.line}:${u.loc.col} (only gather and matmul operands split)`;
    }
  }
  return out;
}

/** Adds a node whose type the catalog infers; a failure here is a bug in this pass. */
function emit(b: GraphBuilder, op: string, operands: readonly number[], attrs: Attrs, like: Node, declared?: TensorType): number {
  const def = getOp(op);
  if (def === undefined) throw new Error(`internal: split-large-weights emits unknown op ${op}`);
  const r = def.infer(
    operands.map((o) => b.node(o).type),
    attrs,
    declared,
  );
  if ('code' in r) throw new Error(`internal: split-large-weights built a bad ${op}: ${r.message}`);
  return b.add({ op, operands, attrs, type: r, loc: like.loc, from: [like.loc], ...(like.scope === undefined ? {} : { scope: like.scope }) });
}

function splitGraph(g: Graph, ctx: PassContext, limit: number): Graph {
  const du = new DefUse(g);

  const plans = new Map<number, Chunk[]>(); // weight id -> chunks
  const role = new Map<number, Use['kind']>(); // user id -> how it is rewritten
  for (const w of g.nodes) {
    if (w.op !== 'weight') continue;
    const shape = constShape(w.type);
    if (shape === undefined) continue;
    const bytes = bufferBytes(w.type, shape.reduce((a, b) => a * b, 1));
    if (bytes <= limit) continue;
    const what = `weight '${String(w.attrs['name']?.kind === 'str' ? w.attrs['name'].value : w.id)}' (${printType(w.type)}, ${bytes} bytes)`;
    const chunks = rowChunks(w.type, limit);
    if (chunks === undefined) {
      ctx.diagnostics.report(diag('TFC401', w.loc, `${what} is over the storage binding limit of ${limit} bytes, and one row along axis 0 is too`));
      continue;
    }
    const uses = classifyUses(w, du);
    if (typeof uses === 'string') {
      ctx.diagnostics.report(diag('TFC401', w.loc, `${what} is over the storage binding limit of ${limit} bytes and cannot be split into row chunks: ${uses}`));
      continue;
    }
    plans.set(w.id, chunks);
    for (const u of uses) role.set(u.user.id, u.kind);
  }
  if (plans.size === 0 || ctx.diagnostics.hasErrors) return g;

  const b = new GraphBuilder();
  const map = new Map<number, number>();
  const chunkIds = new Map<number, number[]>(); // weight id, or its permute's id -> new chunk ids
  const get = (id: number): number => {
    const v = map.get(id);
    if (v === undefined) throw new Error(`internal: split-large-weights lost %${id}`);
    return v;
  };
  const chunksOf = (id: number): number[] => {
    const v = chunkIds.get(id);
    if (v === undefined) throw new Error(`internal: split-large-weights has no chunks for %${id}`);
    return v;
  };
  const scalar = (value: number, like: Node): number =>
    b.add({ op: 'const', operands: [], attrs: { value: attr.float(value) }, type: { dtype: 'i32', shape: [] }, loc: like.loc });

  for (const n of g.nodes) {
    const chunks = plans.get(n.id);
    if (chunks !== undefined) {
      chunkIds.set(
        n.id,
        chunks.map((c) =>
          b.add({
            op: 'weight',
            operands: [],
            attrs: { ...n.attrs, rows: attr.ints([c.start, c.end]), total_rows: attr.int(dimConstValue(n.type.shape[0] ?? dimConst(0)) ?? 0) },
            type: { dtype: n.type.dtype, shape: [dimConst(c.end - c.start), ...n.type.shape.slice(1)] },
            loc: n.loc,
          }),
        ),
      );
      continue;
    }
    const kind = role.get(n.id);
    if (kind === undefined) {
      map.set(n.id, b.copy(n, n.operands.map(get)));
      continue;
    }
    // The split operand: the weight (gather table, matmul A or B, permute input) or its permute.
    const wid = n.operands[kind === 'k' || kind === 'n-matmul' ? 1 : 0] ?? -1;
    const parts = chunksOf(wid);
    const ranges = plans.get(kind === 'n-matmul' ? (g.nodes[wid]?.operands[0] ?? -1) : wid) ?? [];
    switch (kind) {
      case 'n-permute':
        chunkIds.set(
          n.id,
          parts.map((p) => emit(b, 'permute', [p], n.attrs, n)),
        );
        break;
      case 'n-matmul': {
        const a = get(n.operands[0] ?? -1);
        const prods = parts.map((p) => emit(b, 'matmul', [a, p], {}, n));
        map.set(n.id, emit(b, 'concat', prods, { axis: attr.int(n.type.shape.length - 1) }, n));
        break;
      }
      case 'm': {
        const x = get(n.operands[1] ?? -1);
        const prods = parts.map((p) => emit(b, 'matmul', [p, x], {}, n));
        map.set(n.id, emit(b, 'concat', prods, { axis: attr.int(n.type.shape.length - 2) }, n));
        break;
      }
      case 'k': {
        const a = get(n.operands[0] ?? -1);
        const axis = b.node(a).type.shape.length - 1;
        let sum: number | undefined;
        parts.forEach((p, i) => {
          const r = ranges[i];
          if (r === undefined) throw new Error('internal: split-large-weights chunk without a range');
          const ai = emit(b, 'slice', [a], { axis: attr.int(axis), start: attr.dim(dimConst(r.start)), end: attr.dim(dimConst(r.end)) }, n);
          const prod = emit(b, 'matmul', [ai, p], {}, n);
          sum = sum === undefined ? prod : emit(b, 'add', [sum, prod], {}, n);
        });
        if (sum === undefined) throw new Error('internal: split-large-weights: no chunks');
        map.set(n.id, sum);
        break;
      }
      case 'gather': {
        // Each chunk gathers at its clamped local row; the row's chunk is chosen by ids >= start
        // (ids are checked against the whole table before any dispatch: TFC309).
        const ids = get(n.operands[1] ?? -1);
        const idsType = b.node(ids).type;
        const zero = scalar(0, n);
        let acc: number | undefined;
        parts.forEach((p, i) => {
          const r = ranges[i];
          if (r === undefined) throw new Error('internal: split-large-weights chunk without a range');
          const shifted = r.start === 0 ? ids : emit(b, 'sub', [ids, scalar(r.start, n)], {}, n);
          const clamped = emit(b, 'max', [emit(b, 'min', [shifted, scalar(r.end - r.start - 1, n)], {}, n), zero], {}, n);
          const rows = emit(b, 'gather', [p, clamped], {}, n);
          if (acc === undefined) {
            acc = rows;
            return;
          }
          const inChunk = emit(b, 'ge', [ids, scalar(r.start, n)], {}, n);
          const ones = n.type.shape.length - idsType.shape.length;
          const cond = emit(b, 'reshape', [inChunk], { shape: attr.dims([...idsType.shape, ...Array.from({ length: ones }, () => dimConst(1))]) }, n);
          acc = emit(b, 'where', [cond, rows, acc], {}, n);
        });
        if (acc === undefined) throw new Error('internal: split-large-weights: no chunks');
        map.set(n.id, acc);
        break;
      }
    }
  }
  return b.finish(g, g.outputs.map((o) => ({ ...o, value: get(o.value) })));
}

export const splitLargeWeights: GraphPass = {
  name: 'split-large-weights',
  summary: "split weights over the storage binding limit into row chunks (gather/matmul per chunk)",
  run: (g, ctx) => {
    const limit = ctx.maxBindingBytes;
    return limit === undefined ? g : splitGraph(g, ctx, limit);
  },
};
