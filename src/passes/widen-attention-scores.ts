// widen-attention-scores: an f16/bf16 `matmul` whose result reaches a `softmax` through
// elementwise ops (scale, bias add, mask `where`) is computed in f32 up to and including the
// softmax, whose result is cast back. Runs on the webgpu and cuda pipelines right after
// fuse-attention, so it only sees attention that was not fused (`--no-fuse`, or a refused fusion).
//
//   before                                          after
//   %3 = matmul %0, %2 : f16[B,T,T]                  %3 = cast %0 {to=f32} : f32[B,T,dh]
//   %4 = const {value=4.0} : f16[]                   %4 = cast %2 {to=f32} : f32[B,dh,T]
//   %5 = div %3, %4 : f16[B,T,T]                     %5 = matmul %3, %4 : f32[B,T,T]
//   %6 = softmax %5 {axis=2} : f16[B,T,T]            %6 = const {value=4.0} : f32[]
//                                                    %7 = div %5, %6 : f32[B,T,T]
//                                                    %8 = softmax %7 {axis=2} : f32[B,T,T]
//                                                    %9 = cast %8 {to=f16} : f16[B,T,T]
//
// Why: the program types q @ k^T as f16, so a stored score past 65504 is inf before the scale
// and the softmax makes NaN (issue 9); the fused kernel already keeps scores in f32. The matmul
// kernels accumulate in f32 either way, so casting the f16 operands loses nothing. The float64
// interpreter never rounds f16, so the widened graph agrees with it more closely, not less.
// Every node type is what its op's `infer` returns (the verifier checks it). Each path node
// (matmul, mods) must have the next one as its only user; otherwise a remark says why not.
// Needs: types inferred. Keeps: every output and its type.
import { InternalError } from '../diag/diagnostic.js';
import type { Attrs, Graph, Node } from '../graph/ir.js';
import { printSpan } from '../graph/print.js';
import { GraphBuilder, isInterfaceNode, keepNodes, useCounts } from '../graph/rewrite.js';
import { type DType, type TensorType, printType } from '../graph/types.js';
import { isOpError } from '../ops/define.js';
import { getOp } from '../ops/catalog.js';
import type { GraphPass, PassContext } from './pass.js';

const PASS = 'widen-attention-scores';
/** Longest chain of elementwise ops between the matmul and the softmax that is looked through. */
const MAX_MODS = 16;

const isNarrow = (t: DType): boolean => t === 'f16' || t === 'bf16';

/** An elementwise op that keeps its operand dtype and has no dtype attributes (so not `cast`). */
function isScoreMod(n: Node): boolean {
  const op = getOp(n.op);
  return op !== undefined && op.family === 'elementwise' && n.op !== 'cast' && Object.keys(n.attrs).length === 0;
}

/**
 * The path matmul -> mods (ids, matmul first) that ends at `id`, through operands typed
 * `dtype`; undefined when `id` is not reached from a `dtype` matmul within MAX_MODS mods.
 */
function pathTo(g: Graph, id: number, dtype: DType, depth: number): number[] | undefined {
  const n = g.nodes[id];
  if (n === undefined || n.type.dtype !== dtype) return undefined;
  if (n.op === 'matmul') return [id];
  if (depth >= MAX_MODS || !isScoreMod(n)) return undefined;
  for (const o of n.operands) {
    const p = pathTo(g, o, dtype, depth + 1);
    if (p !== undefined) return [...p, id];
  }
  return undefined;
}

/** Path nodes (matmul first) -> the softmax they feed, for every widenable softmax. */
function findChains(g: Graph, ctx: PassContext): Map<number, number[]> {
  const uses = useCounts(g);
  const chains = new Map<number, number[]>(); // softmax id -> path (matmul first)
  for (const n of g.nodes) {
    if (n.op !== 'softmax' || !isNarrow(n.type.dtype)) continue;
    const src = n.operands[0];
    const path = src === undefined ? undefined : pathTo(g, src, n.type.dtype, 0);
    if (path === undefined) continue;
    const shared = path.find((p) => (uses[p] ?? 0) !== 1);
    if (shared !== undefined) {
      const s = g.nodes[shared];
      const what = s === undefined ? `%${shared}` : `${s.op} at ${printSpan(s.loc)}`;
      ctx.remark({ pass: PASS, loc: n.loc, message: `${n.type.dtype} attention scores of the softmax at ${printSpan(n.loc)} not widened to f32: ${what} has other users` });
      continue;
    }
    chains.set(n.id, path);
  }
  return chains;
}

function inferOrThrow(op: string, operands: readonly TensorType[], attrs: Attrs): TensorType {
  const def = getOp(op);
  if (def === undefined) throw new InternalError(`${op} is not in the catalog`, PASS);
  const t = def.infer(operands, attrs);
  if (isOpError(t)) throw new InternalError(`widened ${op} does not type: ${t.message}`, PASS);
  return t;
}

function run(g: Graph, ctx: PassContext): Graph {
  const chains = findChains(g, ctx);
  if (chains.size === 0) return g;
  const onPath = new Set<number>();
  for (const p of chains.values()) for (const id of p) onPath.add(id);

  const b = new GraphBuilder();
  const map: number[] = []; // old id -> new id (for path nodes: the widened f32 value)
  const origin: (number | undefined)[] = []; // new id -> old id it copies
  const mapped = (id: number): number => {
    const v = map[id];
    if (v === undefined) throw new InternalError(`value %${id} used before its definition`, PASS);
    return v;
  };
  for (const n of g.nodes) {
    const scope = n.scope === undefined ? {} : { scope: n.scope };
    const add = (op: string, operands: readonly number[], attrs: Attrs): number => {
      const type = inferOrThrow(op, operands.map((o) => b.node(o).type), attrs);
      return b.add({ op, operands, attrs, type, loc: n.loc, ...scope });
    };
    /** `id` (new graph) as f32: itself, a new f32 const for a scalar const, else a cast. */
    const widen = (id: number): number => {
      const x = b.node(id);
      if (!isNarrow(x.type.dtype)) return id;
      if (x.op === 'const' && x.type.shape.length === 0) return b.add({ op: 'const', operands: [], attrs: x.attrs, type: { dtype: 'f32', shape: [] }, loc: x.loc, ...scope });
      return add('cast', [id], { to: { kind: 'dtype', value: 'f32' } });
    };
    const path = chains.get(n.id);
    if (path !== undefined) {
      // The softmax: computed in f32 on the widened chain, then cast back to the program's dtype.
      const src = n.operands[0];
      if (src === undefined) throw new InternalError(`softmax %${n.id} has no operand`, PASS);
      const p = add('softmax', [mapped(src)], n.attrs);
      map[n.id] = add('cast', [p], { to: { kind: 'dtype', value: n.type.dtype } });
      const names = path.map((id) => g.nodes[id]?.op ?? '?').join(', ');
      ctx.remark({
        pass: PASS,
        loc: n.loc,
        message: `${n.type.dtype} attention scores of the softmax at ${printSpan(n.loc)} computed in f32 (${names}, softmax): stored as ${printType(n.type)} they would ${n.type.dtype === 'f16' ? 'overflow to inf past 65504' : 'keep 8 significant bits'} before the softmax`,
      });
    } else if (onPath.has(n.id)) {
      // matmul: f32 operands (the kernel accumulates in f32 anyway); mods: widened operands.
      const operands = n.operands.map((o) => (onPath.has(o) ? mapped(o) : widen(mapped(o))));
      map[n.id] = add(n.op, operands, n.attrs);
    } else {
      const id = b.copy(n, n.operands.map(mapped));
      origin[id] = n.id;
      map[n.id] = id;
    }
  }
  const built = b.finish(g, g.outputs.map((o) => ({ ...o, value: mapped(o.value) })));
  return pruneOrphans(g, built, origin);
}

/** Drops copies that had users in `before` and have none now (consts only the chain read). */
function pruneOrphans(before: Graph, g: Graph, origin: readonly (number | undefined)[]): Graph {
  const usedBefore = useCounts(before);
  const uses = useCounts(g);
  const keep = new Array<boolean>(g.nodes.length).fill(true);
  for (let i = g.nodes.length - 1; i >= 0; i--) {
    const n = g.nodes[i];
    const o = origin[i];
    if (n === undefined || isInterfaceNode(n) || (uses[i] ?? 0) > 0 || o === undefined || (usedBefore[o] ?? 0) === 0) continue;
    keep[i] = false;
    for (const x of n.operands) uses[x] = (uses[x] ?? 0) - 1;
  }
  return keep.every((k) => k) ? g : keepNodes(g, keep);
}

export const widenAttentionScores: GraphPass = {
  name: PASS,
  summary: 'compute f16/bf16 matmul -> elementwise -> softmax chains (attention scores) in f32',
  run,
};
