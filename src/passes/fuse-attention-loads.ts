// fuse-attention-loads: a fused_map whose only use is a fused_attention's q (RoPE: rope(q) from
// fuse-elementwise) is computed where the attention loads Q: its body becomes the attention's
// `qload` lambda over (b, h, t, d) and its operands become the attention's, so Q never reaches
// global memory (the kernel computes each Q element once per query tile, as it loaded it).
//
//   before                                                after
//   %13 = fused_map %12, %4, %5 {body=(i0, i1, i2, i3) =>  %24 = fused_attention %12, %22, %23, %4, %5 {mask=...,
//         add(mul(read(0, i0, i2, i1, i3), read(1, i2, i3)),     qload=(b, h, t, d) => add(mul(read(0, b, t, h, d),
//         ...), shape=dims[B,4,T,8]} : f32[B,4,T,8]               read(3, t, d)), ...), qshape=dims[B,4,T,8],
//   %24 = fused_attention %13, %22, %23 {mask=..., ...}         scale=...} : f32[B,4,T,8]
//
// Operand 0 of the fused_map stays operand 0 (read(0, ...) unchanged); its other operands are
// appended after the attention's, and the body's reads renumbered. Not fused, with a remark: a
// fused_map with another use or that is a graph output (it is materialized anyway).
// The same for k (a model without a KV cache: rope(k) feeds the attention directly): `kload`
// over (b, h, s, d) with h the KV head, `kshape`; the fused_map's operand 0 becomes operand 1,
// read(1, ...). The kernel recomputes K for every workgroup that loads the key tile. And for v:
// `vload`/`vshape`, operand 2 (a paged cache's V read through its page table).
// A `grid` left alone by fuse-elementwise (it absorbed nothing) is folded the same way.
// Runs after fuse-elementwise (which makes the fused_map) and before fold-views (so the
// projection's reshape feeding operand 0 can still become a view). Needs: types inferred.
// Keeps: outputs, interface, types.
import type { Graph, Node } from '../graph/ir.js';
import { lambdaAttr } from '../graph/ir.js';
import { DefUse, rebuildGraph } from '../graph/rewrite.js';
import { type AttentionInput, attentionLoads } from '../ops/attention.js';
import { mapReads } from './fuse-elementwise.js';
import { countRuleHits, type GraphPass, type PassContext } from './pass.js';

const NAME = 'fuse-attention-loads';

/**
 * Which fused_maps a run folds: 'loads', those read only by the attention (this pass); 'cache',
 * those that are also a graph output (a KV cache's present = concat(past, new)): the attention
 * then writes the value as its second result fused_attention_k / _v (fuse-cache-write.ts).
 */
export type LoadFolding = 'loads' | 'cache';

/** WebGPU's default maxStorageBuffersPerShaderStage: what every adapter offers. */
const MAX_STORAGE_BINDINGS = 8;

interface LoadPlan {
  readonly q?: Node; // the fused_map computing q, to become `qload`
  readonly k?: Node; // the fused_map computing k, to become `kload`
  readonly v?: Node; // the fused_map computing v (a paged cache read through its table), to become `vload`
}

/** fuse-attention-loads (`folding` 'loads') and fuse-cache-write ('cache'): see LoadFolding. */
export function foldAttentionLoads(g: Graph, ctx: PassContext, folding: LoadFolding, name: string): Graph {
  const du = new DefUse(g);
  /** The fused_map at operand `i` of attention `a` when it can be computed at load, else undefined (with a remark). */
  const foldable = (a: Node, which: AttentionInput): Node | undefined => {
    const f = g.nodes[a.operands[attentionLoads[which].operand] ?? -1];
    if (a.attrs[attentionLoads[which].load] !== undefined) {
      // An int8 cache: the load dequantizes the stored cache, which is itself the output.
      if (folding === 'cache' && f !== undefined && du.isOutput(f.id)) ctx.remark({ pass: name, loc: f.loc, message: `attention does not write its ${which}, a graph output, itself: its ${attentionLoads[which].load} already computes K/V from it (a quantized cache)` });
      return undefined;
    }
    // A lone grid (nothing fused into it: a paged cache's view whose new tokens are a buffer
    // anyway, read by the cache write too) has the same body form as a fused_map.
    if (f === undefined || (f.op !== 'fused_map' && f.op !== 'grid')) return undefined;
    const uses = du.uses(f.id).length;
    // 'cache' folds only outputs (the rest is fuse-attention-loads' case); their other readers
    // would need the written value before the attention writes it.
    if (folding === 'cache' && !du.isOutput(f.id)) return undefined;
    const why = folding === 'loads' && du.isOutput(f.id) ? 'it is a graph output' : uses !== 1 ? `it has ${uses} uses` : undefined;
    if (why === undefined) return f;
    ctx.remark({ pass: name, loc: f.loc, message: folding === 'loads' ? `fused_map feeding attention's ${which} not computed at load: ${why}` : `attention does not write its ${which}, a graph output, itself: ${why}` });
    return undefined;
  };
  // The split-K kernel binds the attention's operands, its partials and each written result
  // (and an LSE): WebGPU guarantees 8 storage buffers per stage (lavapipe allows more, Chromium's
  // adapter does not). Each folded cache adds its result and the map's other operands (Llama's
  // K: the new row, cos, sin); K is taken first, then V, while they fit.
  const lse = new Set(g.nodes.filter((n) => n.op === 'fused_attention_lse').map((n) => n.operands[0]));
  const withinBindings = (a: Node, k: Node | undefined, v: Node | undefined): [Node | undefined, Node | undefined] => {
    let count = a.operands.length + 1 + (lse.has(a.id) ? 1 : 0);
    const reads = new Set(a.operands);
    const take = (f: Node | undefined, which: AttentionInput): Node | undefined => {
      if (f === undefined) return undefined;
      const added = 1 + f.operands.slice(1).filter((o) => !reads.has(o)).length;
      if (count + added > MAX_STORAGE_BINDINGS) {
        ctx.remark({ pass: name, loc: f.loc, message: `attention does not write its ${which}, a graph output, itself: its kernel would bind ${count + added} storage buffers (WebGPU guarantees ${MAX_STORAGE_BINDINGS})` });
        return undefined;
      }
      count += added;
      for (const o of f.operands.slice(1)) reads.add(o);
      return f;
    };
    return [take(k, 'k'), take(v, 'v')];
  };
  const plan = new Map<number, LoadPlan>();
  for (const a of g.nodes) {
    if (a.op !== 'fused_attention') continue;
    const q = folding === 'loads' ? foldable(a, 'q') : undefined;
    let k = foldable(a, 'k');
    let v = foldable(a, 'v');
    if (folding === 'cache') [k, v] = withinBindings(a, k, v);
    if (q !== undefined || k !== undefined || v !== undefined) plan.set(a.id, { ...(q !== undefined ? { q } : {}), ...(k !== undefined ? { k } : {}), ...(v !== undefined ? { v } : {}) });
  }
  if (plan.size === 0) return g;
  const absorbed = new Set([...plan.values()].flatMap((p) => [p.q, p.k, p.v]).flatMap((f) => (f === undefined ? [] : [f.id])));
  const hit = (rule: string, k: number): void => {
    if (k > 0) countRuleHits(ctx, `${name}/${rule}`, k);
  };
  const out = rebuildGraph(g, (n, r) => {
    if (absorbed.has(n.id)) return undefined;
    const p = plan.get(n.id);
    if (p === undefined) return r.copy(n);
    // A fused_map's operand 0 replaces q (k) as operand 0 (1); its operands j >= 1 go after the
    // attention's operands (q's first, then k's), and its body's reads are renumbered to match.
    const operands = [...n.operands];
    const attrs = { ...n.attrs };
    const from = [...(n.from ?? [n.loc])];
    for (const which of ['q', 'k', 'v'] as const) {
      const f = p[which];
      if (f === undefined) continue;
      const { operand: slot, load: lk, shape: sk, params } = attentionLoads[which];
      operands[slot] = f.operands[0] ?? -1;
      // A tensor the attention already reads (a page table both loads index, a length) is read
      // through that operand: each operand is a storage binding, and WebGPU guarantees only 8.
      const at = f.operands.map((o, j) => {
        if (j === 0) return slot;
        const i = operands.indexOf(o);
        if (i >= 0) return i;
        operands.push(o);
        return operands.length - 1;
      });
      attrs[lk] = { kind: 'lambda', params, body: mapReads(lambdaAttr(f, 'body').body, (j) => at[j] ?? -1) };
      attrs[sk] = { kind: 'dims', value: f.type.shape };
      from.push(f.loc, ...(f.from ?? []));
    }
    // Every lambda reads a tensor through its first operand position (the kernel binds each
    // position it reads: a length read by the mask and by two loads would be three bindings).
    // The mask and score lambdas read only extras (3 and up), so a tensor is canonically read
    // at its first extra position when it has one; the loads may read any operand.
    const canon = operands.map((o, i) => {
      const extra = operands.findIndex((x, j) => j >= 3 && x === o);
      return extra >= 0 ? extra : i;
    });
    if (canon.some((c, i) => c !== i)) {
      for (const [key, a] of Object.entries(attrs)) {
        if (a?.kind === 'lambda') attrs[key] = { ...a, body: mapReads(a.body, (j) => canon[j] ?? j) };
      }
    }
    const id = r.b.add({
      op: n.op,
      operands: operands.map(r.mapped),
      attrs,
      type: n.type,
      loc: n.loc,
      from,
      ...(n.scope !== undefined ? { scope: n.scope } : {}),
    });
    if (folding === 'cache') {
      // The folded value (an output) is now the attention's second result: K or V as it loads them.
      for (const which of ['k', 'v'] as const) {
        const f = p[which];
        if (f === undefined) continue;
        const res = r.b.add({ op: `fused_attention_${which}`, operands: [id], attrs: {}, type: f.type, loc: f.loc, ...(f.scope !== undefined ? { scope: f.scope } : {}) });
        r.bind(f.id, res);
      }
    }
    return id;
  });
  const count = (which: AttentionInput): number => [...plan.values()].filter((p) => p[which] !== undefined).length;
  for (const which of ['q', 'k', 'v'] as const) hit(folding === 'loads' ? `${which}load` : `${which}write`, count(which));
  return out;
}

function run(g: Graph, ctx: PassContext): Graph {
  return foldAttentionLoads(g, ctx, 'loads', NAME);
}

export const fuseAttentionLoads: GraphPass = {
  name: NAME,
  summary: "compute a fused_map read only as attention's q, k or v (RoPE, a paged cache) in the attention's Q, K or V load (qload / kload / vload lambdas)",
  run,
};
