// fuse-elementwise: turns chains of elementwise ops (with `where`, `cast`, scalar constants,
// `grid` masks, the index remaps `permute` and `slice`, `concat` as `where(i < end0, x0[i],
// x1[i - end0])` (a lazy select: only the chosen branch reads), `arange` as the index expression
// `start + i`, and `gather` as a data-dependent read `read(table, clamp(read(ids, ...)), j)`) into
// one `fused_map` node whose body is a lambda over the result indices; operands that are not
// fused are read with `read(i, ...)`, broadcasting per operand (a size-1 axis reads index 0,
// missing leading axes are dropped). One fused_map is one kernel, so the intermediates never reach global memory.
//
//   before                                        after
//   %0 = input {name="x"} : f32[T,4]              %0 = input {name="x"} : f32[T,4]
//   %1 = weight {name="b"} : f32[4]               %1 = weight {name="b"} : f32[4]
//   %2 = add %0, %1 : f32[T,4]                    %2 = fused_map %0, %1 {body=(i0, i1) =>
//   %3 = const {value=2.0} : f32[]                     exp(mul(add(read(0, i0, i1), read(1, i1)), 2.0)),
//   %4 = mul %2, %3 : f32[T,4]                         shape=dims[T,4]} : f32[T,4]
//   %5 = exp %4 : f32[T,4]                        output "y" = %2
//   output "y" = %5
//
// A value is fused into its consumer when that consumer is the only use and is itself fusable;
// a value with several uses (or a graph output) stays a buffer, with a remark when a fusable
// consumer had to read it back. Exception: a permute/slice chain over a value that is a buffer
// anyway is folded into every fusable consumer (a re-read at other indices, no recompute): so
// RoPE's `x * cos + concat(-x2, x1) * sin` on `permute(x)` is one fused_map reading x at d and
// d +- dh/2, and `concat(past_k, rope(k))` one more (examples/llama.tfx). A group becomes a fused_map only when it absorbed at least one
// node; a lone op stays as it was. An op's attributes ride on its apply (`gelu{approx="tanh"}(..)`),
// so its lowering and float64 rule are the catalog's, as for the unfused op.
// A fused body holds at most MAX_FUSED_OPS absorbed nodes: a longer chain is split into several
// fused_maps (the value at the cut is materialized). This bounds the recursion of the walk (a
// 2000-op `y = y + x` chain overflowed the stack), the later tree walks over the body (lowering,
// printing) and the size of one WGSL expression.
// GPT-2's embedding `wte[tokens] + wpe[arange(T)]` becomes one kernel:
//   %3 = fused_map %1, %0, %2 {body=(i0, i1, i2) =>
//          add(read(0, min(max(read(1, i0, i1), 0), 255), i2), read(2, min(max(i1, 0), 63), i2)), ...}
// (%1 wte f32[256,64], %0 tokens, %2 wpe f32[64,64]). The id clamp is the gather kernel's, so
// the fused graph under the interpreter reads a clamped row where the unfused one reports TFC309.
// Needs: types inferred. Keeps: the graph's outputs and interface; every surviving type.
import type { Graph, Node, ScalarExpr } from '../graph/ir.js';
import { dimAttr, floatAttr, intAttr, intsAttr, lambdaAttr } from '../graph/ir.js';
import { DefUse, rebuildGraph } from '../graph/rewrite.js';
import { ap, dimValue, i32, idx, mapScalarExpr, substituteIndex } from '../graph/lambda.js';
import { dimAdd, dimConst, dimConstValue } from '../base/dim.js';
import { getOp } from '../ops/catalog.js';
import type { DType } from '../graph/types.js';
import { countRuleHits, type GraphPass, type PassContext } from './pass.js';

const NAME = 'fuse-elementwise';

/** Most nodes folded into one fused_map (real models fuse fewer than 20; see the header). */
export const MAX_FUSED_OPS = 64;

/**
 * Most tensors one fused_map reads: WebGPU's default maxStorageBuffersPerShaderStage is 8, one of
 * them the result. A body over more (a sum of many distinct tensors: an optimizer's global
 * gradient norm adds one scalar per weight) is rebuilt absorbing fewer nodes, and the values at
 * the cut are materialized.
 */
export const MAX_FUSED_READS = 7;

/** Ops the pass can express inside a lambda. */
export function isMappable(n: Node): boolean {
  const def = getOp(n.op);
  if (def === undefined) return false;
  if (def.family === 'elementwise') return true;
  if (n.op === 'const') return n.type.shape.length === 0;
  return n.op === 'grid' || n.op === 'fused_map' || n.op === 'permute' || n.op === 'slice' || n.op === 'gather' || n.op === 'arange' || n.op === 'concat';
}

/** Longest permute/slice chain read through as an index remap (bounds the recursion). */
const MAX_REMAP_DEPTH = 16;

const f = (value: number, dtype: DType): ScalarExpr => ({ kind: 'const', value, dtype });

/** Renumbers `read` operands through `map` (global node ids <-> operand positions). */
export function mapReads(e: ScalarExpr, map: (operand: number) => number): ScalarExpr {
  return mapScalarExpr(e, (x, rec) => (x.kind === 'read' ? { ...x, operand: map(x.operand), indices: x.indices.map(rec) } : undefined));
}

/** Index expressions for an operand of shape `from` broadcast into a result of shape `to`. */
function broadcastIndices(n: Node, operand: Node): ScalarExpr[] {
  const to = n.type.shape;
  const from = operand.type.shape;
  const lead = to.length - from.length;
  return from.map((d, k) => {
    const od = to[lead + k];
    return dimConstValue(d) === 1 && (od === undefined || dimConstValue(od) !== 1) ? i32(0) : idx(lead + k);
  });
}

/**
 * An elementwise node as a lambda apply: its attributes ride along (gelu's approx), except
 * dtype-valued ones, which follow from the apply's dtype (cast's `to`).
 */
function applyOf(n: Node, args: ScalarExpr[]): ScalarExpr {
  const kinds = getOp(n.op)?.attrs ?? {};
  const own = Object.entries(n.attrs).filter(([k]) => kinds[k] !== 'dtype');
  const e = { kind: 'apply' as const, op: n.op, args, dtype: n.type.dtype };
  return own.length === 0 ? e : { ...e, attrs: Object.fromEntries(own) };
}

class Fuser {
  private readonly du: DefUse;
  /** Nodes folded into their only consumer (not emitted). */
  inlined = new Set<number>();
  /** Most nodes the body being built may absorb (lowered when a body reads too many tensors). */
  cap = MAX_FUSED_OPS;
  private readonly remarked = new Set<number>();

  constructor(
    g: Graph,
    private readonly ctx: PassContext,
  ) {
    this.du = new DefUse(g);
  }

  private node(id: number): Node {
    return this.du.node(id);
  }

  /**
   * Whether `n` is a permute/slice chain over a value that is materialized anyway (not mappable,
   * an output, or shared): reading it at remapped indices costs no more than a view, so it is
   * folded into every consumer, however many (RoPE reads x through one permute at two offsets).
   * Its expression is then the same from every consumer, and the fused-op cap does not cut it.
   */
  isRemap(n: Node, depth = 0): boolean {
    if ((n.op !== 'permute' && n.op !== 'slice') || depth >= MAX_REMAP_DEPTH) return false;
    const src = this.node(n.operands[0] ?? -1);
    if (src.op === 'permute' || src.op === 'slice') return this.isRemap(src, depth + 1);
    return !isMappable(src) || src.op === 'const' || this.du.isOutput(src.id) || this.du.uses(src.id).length > 1;
  }

  /** Whether `o` is folded into its consumer `user` (then it is not materialized). */
  private fusesInto(o: Node, user: Node): boolean {
    if (!isMappable(o) || !isMappable(user) || o.op === 'const' || this.du.isOutput(o.id)) return false;
    const us = this.du.users(o.id);
    if (us.length === 1 && us[0] === user) return true;
    if (us.length > 1 && us.every((u) => isMappable(u)) && this.isRemap(o)) return true;
    if (us.length > 1 && us.every(isMappable) && !this.remarked.has(o.id)) {
      this.remarked.add(o.id);
      this.ctx.remark({ pass: NAME, loc: o.loc, message: `${o.op} result kept in memory: it has ${us.length} uses, fusing would recompute it per use` });
    }
    return false;
  }

  /**
   * The value of node `id` at the index `at` (expressions over the root's indices), with reads of
   * materialized tensors as `read(<global node id>, ...)`. `absorbed` counts the nodes folded in.
   */
  expr(id: number, at: readonly ScalarExpr[], user: Node | undefined, absorbed: number[]): ScalarExpr {
    const n = this.node(id);
    if (n.op === 'const' && n.type.shape.length === 0) return f(floatAttr(n, 'value'), n.type.dtype);
    const fuses = user !== undefined && this.fusesInto(n, user);
    if (user !== undefined && (!fuses || (absorbed.length >= this.cap && !this.isRemap(n)))) {
      if (fuses && !this.remarked.has(n.id)) {
        this.remarked.add(n.id);
        const why = this.cap === MAX_FUSED_OPS ? `reached ${MAX_FUSED_OPS} ops` : `would read more than ${MAX_FUSED_READS} tensors`;
        this.ctx.remark({ pass: NAME, loc: n.loc, message: `${n.op} result kept in memory: the fused body ${why}, the chain is split here` });
      }
      return { kind: 'read', operand: id, indices: at, dtype: n.type.dtype };
    }
    if (user !== undefined) {
      if (!absorbed.includes(id)) absorbed.push(id);
      this.inlined.add(id);
    }
    const operandAt = (k: number, indices: readonly ScalarExpr[]): ScalarExpr => {
      const o = n.operands[k];
      if (o === undefined) throw new Error(`internal: %${n.id} lacks operand ${k}`);
      return this.expr(o, indices, n, absorbed);
    };
    const operandNode = (k: number): Node => this.node(n.operands[k] ?? -1);
    switch (n.op) {
      case 'grid':
      case 'fused_map': {
        const body = substituteIndex(lambdaAttr(n, 'body').body, at);
        return this.inlineReads(body, n, absorbed);
      }
      case 'permute': {
        // Result axis i is input axis perm[i].
        const perm = intsAttr(n, 'perm');
        const inAt: ScalarExpr[] = new Array<ScalarExpr>(perm.length);
        perm.forEach((p, i) => (inAt[p] = at[i] ?? i32(0)));
        return operandAt(0, inAt);
      }
      case 'arange': {
        // Element i is start + i.
        const start = dimAttr(n, 'start');
        const i = at[0] ?? i32(0);
        return dimConstValue(start) === 0 ? i : ap('add', 'i32', i, { kind: 'dim', dim: start });
      }
      case 'gather': {
        // table[ids] at (p..., j...) is table[clamp(ids[p...], 0, V - 1), j...]: a data-dependent
        // read. The clamp is the gather kernel's (kernel/lower/lower.ts emitGather): an id outside the table
        // (TFC309 in the unfused interpreter and the host's range checks) must not read past the
        // buffer, and a position from arange(T) with T > V is not checked by a compiled session.
        const idsRank = operandNode(1).type.shape.length;
        const rows = operandNode(0).type.shape[0] ?? dimConst(1);
        const v = dimConstValue(rows);
        const last = v !== undefined ? i32(v - 1) : ap('sub', 'i32', { kind: 'dim', dim: rows }, i32(1));
        const id = ap('min', 'i32', ap('max', 'i32', operandAt(1, at.slice(0, idsRank)), i32(0)), last);
        return operandAt(0, [id, ...at.slice(idsRank)]);
      }
      case 'slice': {
        const axis = intAttr(n, 'axis');
        const start = dimAttr(n, 'start');
        const inAt = at.map((x, k) => (k === axis && !(dimConstValue(start) === 0) ? ap('add', 'i32', x, { kind: 'dim', dim: start }) : x));
        return operandAt(0, inAt);
      }
      case 'concat': {
        // where(c < end0, x0[.., c, ..], where(c < end1, x1[.., c - end0, ..], ...)): a lazy
        // select (the interpreter and the kernel run only the chosen branch's reads).
        const axis = intAttr(n, 'axis');
        const c = at[axis] ?? i32(0);
        const parts = n.operands.map((_, k) => {
          const o = operandNode(k);
          return { k, size: o.type.shape[axis] ?? dimConst(1) };
        });
        let offset = dimConst(0);
        const pieces = parts.map(({ k, size }) => {
          const start = offset;
          offset = dimAdd(offset, size);
          const local = dimConstValue(start) === 0 ? c : ap('sub', 'i32', c, dimValue(start));
          return { end: offset, value: operandAt(k, at.map((x, j) => (j === axis ? local : x))) };
        });
        let out: ScalarExpr | undefined;
        for (let k = pieces.length - 1; k >= 0; k--) {
          const p = pieces[k];
          if (p === undefined) continue;
          out = out === undefined ? p.value : ap('where', n.type.dtype, ap('lt', 'bool', c, dimValue(p.end)), p.value, out);
        }
        if (out === undefined) throw new Error(`internal: concat %${n.id} without operands`);
        return out;
      }
      default: {
        return applyOf(n, n.operands.map((_, k) => operandAt(k, broadcastIndices(n, operandNode(k)).map((x) => substituteIndex(x, at)))));
      }
    }
  }

  /** In a lambda body of node `n` (operands numbered locally), reads of fusable operands become their expressions. */
  private inlineReads(e: ScalarExpr, n: Node, absorbed: number[]): ScalarExpr {
    return mapScalarExpr(e, (x, rec) => {
      if (x.kind !== 'read') return undefined;
      const indices = x.indices.map(rec);
      const o = n.operands[x.operand];
      if (o === undefined) throw new Error(`internal: %${n.id} reads operand ${x.operand}`);
      return this.expr(o, indices, n, absorbed);
    });
  }
}

function run(g: Graph, ctx: PassContext): Graph {
  const fuser = new Fuser(g, ctx);
  // Roots: mappable nodes not folded into a consumer. Walk consumers first (reverse order), so a
  // node's fate is known before it is visited.
  const bodies = new Map<number, { body: ScalarExpr; leaves: number[]; absorbed: number[] }>();
  for (let i = g.nodes.length - 1; i >= 0; i--) {
    const n = g.nodes[i];
    if (n === undefined || !isMappable(n) || n.op === 'const' || fuser.inlined.has(n.id)) continue;
    const params = n.type.shape.map((_, k) => idx(k));
    // Build the body; while it reads too many tensors, rebuild it absorbing half as many nodes.
    const before = new Set(fuser.inlined);
    let absorbed: number[] = [];
    let leaves: number[] = [];
    let local: ScalarExpr | undefined;
    for (fuser.cap = MAX_FUSED_OPS; ; ) {
      absorbed = [];
      const body = fuser.expr(n.id, params, undefined, absorbed);
      leaves = [];
      local = mapReads(body, (id) => {
        let k = leaves.indexOf(id);
        if (k < 0) k = leaves.push(id) - 1;
        return k;
      });
      if (leaves.length <= MAX_FUSED_READS || absorbed.length === 0) break;
      fuser.inlined = new Set(before);
      fuser.cap = Math.min(fuser.cap, absorbed.length) >> 1;
    }
    fuser.cap = MAX_FUSED_OPS;
    if (absorbed.length === 0 || local === undefined) continue;
    bodies.set(n.id, { body: local, leaves, absorbed: absorbed.sort((x, y) => x - y) });
  }
  if (bodies.size === 0) return g;
  let fused = 0;
  const out = rebuildGraph(g, (n, r) => {
    if (fuser.inlined.has(n.id)) return undefined;
    const fb = bodies.get(n.id);
    if (fb === undefined) return r.copy(n);
    fused++;
    const params = n.type.shape.map((_, k) => `i${k}`);
    const from = fb.absorbed.map((id) => g.nodes[id]?.loc).filter((l) => l !== undefined);
    return r.b.add({
      op: 'fused_map',
      operands: fb.leaves.map(r.mapped),
      attrs: { shape: { kind: 'dims', value: n.type.shape }, body: { kind: 'lambda', params, body: fb.body } },
      type: n.type,
      loc: n.loc,
      from: [n.loc, ...from],
      ...(n.scope !== undefined ? { scope: n.scope } : {}),
    });
  });
  countRuleHits(ctx, `${NAME}/fused_map`, fused);
  return out;
}

export const fuseElementwise: GraphPass = {
  name: NAME,
  summary: 'fuse chains of elementwise ops, where, cast, consts, grids, permutes, slices, aranges and gathers into fused_map',
  run,
};

/**
 * A lone elementwise node or a fused_map as a lambda body over its result indices, with reads
 * numbered by the node's operands (for fuse-epilogue). Undefined for anything else.
 */
export function lambdaOf(g: Graph, n: Node): { readonly params: readonly string[]; readonly body: ScalarExpr } | undefined {
  if (n.op === 'fused_map') {
    const l = lambdaAttr(n, 'body');
    return { params: l.params, body: l.body };
  }
  if (getOp(n.op)?.family !== 'elementwise') return undefined;
  const args = n.operands.map((o, k): ScalarExpr => {
    const on = g.nodes[o];
    if (on === undefined) throw new Error(`internal: no node %${o}`);
    if (on.op === 'const' && on.type.shape.length === 0) return f(floatAttr(on, 'value'), on.type.dtype);
    return { kind: 'read', operand: k, indices: broadcastIndices(n, on), dtype: on.type.dtype };
  });
  return { params: n.type.shape.map((_, k) => `i${k}`), body: applyOf(n, args) };
}
