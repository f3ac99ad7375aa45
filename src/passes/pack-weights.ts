// pack-weights: horizontal fusion of matmuls that read the same A. Matmuls `A @ transpose(W_i)`
// (Hugging Face's [out, in] layout: W_i is [N_i, K]) whose weights are used nowhere else become ONE
// matmul over the weights packed along their rows at load (`packed_weight`: no kernel, the plan's
// buffer is filled from the original safetensors tensors); each old result is a slice of the one
// product. A Llama layer's q, k and v (A = the normed x) and its gate and up become one dispatch
// each; fuse-norm then folds the norm into the one matmul, fold-views turns the slices into reads,
// and fuse-epilogue folds `silu(gate) * up` over the two halves into a paired epilogue.
//
//   before                                              after
//   %1 = weight {name="wq"} : f32[8,4]                  %1 = weight {name="wq"} : f32[8,4]
//   %2 = permute %1 {perm=[1,0]} : f32[4,8]             %2 = weight {name="wk"} : f32[2,4]
//   %3 = matmul %0, %2 : f32[T,8]                       %3 = packed_weight %1, %2 : f32[10,4]
//   %4 = weight {name="wk"} : f32[2,4]                  %4 = permute %3 {perm=[1,0]} : f32[4,10]
//   %5 = permute %4 {perm=[1,0]} : f32[4,2]             %5 = matmul %0, %4 : f32[T,10]
//   %6 = matmul %0, %5 : f32[T,2]                       %6 = slice %5 {axis=1, start=0, end=8} : f32[T,8]
//                                                       %7 = slice %5 {axis=1, start=8, end=10} : f32[T,2]
//
// Not packed, with a remark: a packed weight over the storage binding limit (one binding must
// hold it), or a part whose bytes are not a multiple of 4 (each part is written at its own offset
// at load). Weights read by anything else (a tied embedding) and row chunks (split-large-weights,
// which runs before) are left alone. The first fusion pass (--no-fuse leaves it out); training
// leaves it out too (the optimizer updates weights by name). Needs: types inferred. Keeps: every
// weight node and name (the model's interface: loading still takes the original tensors), outputs.
import { dimConst, dimConstValue } from '../base/dim.js';
import { type Attrs, type Graph, type Node, attr, intsAttr, strAttr } from '../graph/ir.js';
import { DefUse, GraphBuilder, removeDeadNodes } from '../graph/rewrite.js';
import { storageBytes } from '../graph/types.js';
import { getOp } from '../ops/catalog.js';
import { weightRowRange } from '../ops/source.js';
import { countRuleHits, type GraphPass, type PassContext } from './pass.js';

const NAME = 'pack-weights';

interface Member {
  readonly matmul: Node;
  readonly permute: Node;
  readonly weight: Node;
  readonly rows: number;
}

/** `A @ permute(W, [1, 0])` with W a whole rank-2 weight used only there: its parts, or undefined. */
function memberOf(m: Node, du: DefUse): Member | undefined {
  if (m.op !== 'matmul') return undefined;
  const p = du.g.nodes[m.operands[1] ?? -1];
  if (p === undefined || p.op !== 'permute' || m.operands[0] === p.id || du.isOutput(p.id) || du.users(p.id).length !== 1) return undefined;
  const perm = intsAttr(p, 'perm');
  if (perm.length !== 2 || perm[0] !== 1 || perm[1] !== 0) return undefined;
  const w = du.g.nodes[p.operands[0] ?? -1];
  if (w === undefined || w.op !== 'weight' || weightRowRange(w) !== undefined || du.isOutput(w.id) || du.users(w.id).length !== 1) return undefined;
  const rows = dimConstValue(w.type.shape[0] ?? dimConst(0));
  if (w.type.shape.length !== 2 || rows === undefined || dimConstValue(w.type.shape[1] ?? dimConst(0)) === undefined) return undefined;
  return { matmul: m, permute: p, weight: w, rows };
}

/** Groups of >= 2 members sharing A and the weight dtype, in graph order, each within the limits. */
function findGroups(g: Graph, ctx: PassContext): Member[][] {
  const du = new DefUse(g);
  const byKey = new Map<string, Member[]>();
  for (const n of g.nodes) {
    const m = memberOf(n, du);
    if (m === undefined) continue;
    const key = `${n.operands[0] ?? -1}:${m.weight.type.dtype}`;
    byKey.set(key, [...(byKey.get(key) ?? []), m]);
  }
  const groups: Member[][] = [];
  for (const ms of byKey.values()) {
    if (ms.length < 2) continue;
    const first = ms[0];
    if (first === undefined) continue;
    const names = ms.map((m) => strAttr(m.weight, 'name')).join(', ');
    const k = dimConstValue(first.weight.type.shape[1] ?? dimConst(0)) ?? 0;
    const bytes = (rows: number): number => rows * k * storageBytes(first.weight.type.dtype);
    const total = bytes(ms.reduce((s, m) => s + m.rows, 0));
    const why =
      ctx.maxBindingBytes !== undefined && total > ctx.maxBindingBytes ? `the packed weight (${total} bytes) is over the storage binding limit of ${ctx.maxBindingBytes} bytes`
      : ms.some((m) => bytes(m.rows) % 4 !== 0) ? 'a part is not a multiple of 4 bytes (each part is written at its own offset at load)'
      : undefined;
    if (why !== undefined) {
      ctx.remark({ pass: NAME, loc: first.matmul.loc, message: `matmuls over ${names} not packed: ${why}` });
      continue;
    }
    groups.push(ms);
  }
  return groups;
}

/** Adds a node whose type the catalog infers; a failure here is a bug in this pass. */
function emit(b: GraphBuilder, op: string, operands: readonly number[], attrs: Attrs, like: Node, from?: readonly Node[]): number {
  const def = getOp(op);
  if (def === undefined) throw new Error(`internal: ${NAME} emits unknown op ${op}`);
  const r = def.infer(
    operands.map((o) => b.node(o).type),
    attrs,
  );
  if ('code' in r) throw new Error(`internal: ${NAME} built a bad ${op}: ${r.message}`);
  return b.add({ op, operands, attrs, type: r, loc: like.loc, ...(from === undefined ? {} : { from: from.map((n) => n.loc) }), ...(like.scope === undefined ? {} : { scope: like.scope }) });
}

function run(g: Graph, ctx: PassContext): Graph {
  const groups = findGroups(g, ctx);
  if (groups.length === 0) return g;
  const groupOf = new Map<number, Member[]>(); // first matmul id -> its group
  const dropped = new Set<number>(); // permutes and later matmuls (their results are slices)
  for (const ms of groups) {
    groupOf.set(ms[0]?.matmul.id ?? -1, ms);
    for (const m of ms) dropped.add(m.permute.id);
    for (const m of ms.slice(1)) dropped.add(m.matmul.id);
  }
  const b = new GraphBuilder();
  const map = new Map<number, number>();
  const get = (id: number): number => {
    const v = map.get(id);
    if (v === undefined) throw new Error(`internal: ${NAME} lost %${id}`);
    return v;
  };
  for (const n of g.nodes) {
    if (map.has(n.id) || dropped.has(n.id)) continue; // a weight emitted early, or a replaced node
    const ms = groupOf.get(n.id);
    if (ms === undefined) {
      map.set(n.id, b.copy(n, n.operands.map(get)));
      continue;
    }
    // Later members' weights come after this matmul in graph order: weights have no operands, so
    // they move up to here.
    for (const m of ms) if (!map.has(m.weight.id)) map.set(m.weight.id, b.copy(m.weight, []));
    const first = ms[0]?.weight ?? n;
    const packed = emit(b, 'packed_weight', ms.map((m) => get(m.weight.id)), {}, first);
    const t = emit(b, 'permute', [packed], { perm: attr.ints([1, 0]) }, n);
    const y = emit(b, 'matmul', [get(n.operands[0] ?? -1), t], {}, n, ms.map((m) => m.matmul));
    const axis = n.type.shape.length - 1;
    let offset = 0;
    for (const m of ms) {
      const slice = { axis: attr.int(axis), start: attr.dim(dimConst(offset)), end: attr.dim(dimConst(offset + m.rows)) };
      map.set(m.matmul.id, emit(b, 'slice', [y], slice, m.matmul));
      offset += m.rows;
    }
    ctx.remark({ pass: NAME, loc: n.loc, message: `${ms.length} matmuls over ${ms.map((m) => strAttr(m.weight, 'name')).join(', ')} packed into one (weights packed at load: ${offset} rows)` });
  }
  countRuleHits(ctx, `${NAME}/packed`, groups.length);
  return removeDeadNodes(b.finish(g, g.outputs.map((o) => ({ ...o, value: get(o.value) }))));
}

export const packWeights: GraphPass = {
  name: NAME,
  summary: 'one matmul for matmuls reading the same A (q/k/v, gate/up): their [N, K] weights packed along N at load, results sliced',
  run,
};
