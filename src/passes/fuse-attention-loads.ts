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
// Runs after fuse-elementwise (which makes the fused_map) and before fold-views (so the
// projection's reshape feeding operand 0 can still become a view). Needs: types inferred.
// Keeps: outputs, interface, types.
import type { Graph, Node, ScalarExpr } from '../graph/ir.js';
import { lambdaAttr } from '../graph/ir.js';
import { GraphBuilder, removeDeadNodes } from '../graph/rewrite.js';
import { qloadParams } from '../ops/attention.js';
import { mapReads } from './fuse-elementwise.js';
import type { GraphPass, PassContext } from './pass.js';

const NAME = 'fuse-attention-loads';

function run(g: Graph, ctx: PassContext): Graph {
  const uses = g.nodes.map(() => 0);
  for (const n of g.nodes) for (const o of n.operands) uses[o] = (uses[o] ?? 0) + 1;
  const outputs = new Set(g.outputs.map((o) => o.value));
  // attention id -> the fused_map it loads Q through
  const plan = new Map<number, Node>();
  for (const a of g.nodes) {
    if (a.op !== 'fused_attention' || a.attrs['qload'] !== undefined) continue;
    const f = g.nodes[a.operands[0] ?? -1];
    if (f === undefined || f.op !== 'fused_map') continue;
    const why = outputs.has(f.id) ? 'it is a graph output' : (uses[f.id] ?? 0) !== 1 ? `it has ${uses[f.id] ?? 0} uses` : undefined;
    if (why !== undefined) {
      ctx.remark({ pass: NAME, loc: f.loc, message: `fused_map feeding attention's q not computed at load: ${why}` });
      continue;
    }
    plan.set(a.id, f);
  }
  if (plan.size === 0) return g;
  const absorbed = new Set([...plan.values()].map((f) => f.id));
  const b = new GraphBuilder();
  const map: number[] = [];
  const mapped = (id: number): number => {
    const v = map[id];
    if (v === undefined) throw new Error(`internal: %${id} used before definition or was fused away`);
    return v;
  };
  for (const n of g.nodes) {
    if (absorbed.has(n.id)) continue;
    const f = plan.get(n.id);
    if (f === undefined) {
      map[n.id] = b.copy(n, n.operands.map(mapped));
      continue;
    }
    // f's operand 0 replaces q; f's operand j >= 1 goes after the attention's operands.
    const first = n.operands.length;
    const body: ScalarExpr = mapReads(lambdaAttr(f, 'body').body, (j) => (j === 0 ? 0 : first + j - 1));
    map[n.id] = b.add({
      op: n.op,
      operands: [f.operands[0] ?? -1, ...n.operands.slice(1), ...f.operands.slice(1)].map(mapped),
      attrs: { ...n.attrs, qload: { kind: 'lambda', params: qloadParams, body }, qshape: { kind: 'dims', value: f.type.shape } },
      type: n.type,
      loc: n.loc,
      from: [...(n.from ?? [n.loc]), f.loc, ...(f.from ?? [])],
      ...(n.scope !== undefined ? { scope: n.scope } : {}),
    });
  }
  ctx.stats.ruleHits.set(`${NAME}/qload`, (ctx.stats.ruleHits.get(`${NAME}/qload`) ?? 0) + plan.size);
  return removeDeadNodes(b.finish(g, g.outputs.map((o) => ({ ...o, value: mapped(o.value) }))));
}

export const fuseAttentionLoads: GraphPass = {
  name: NAME,
  summary: "compute a fused_map read only as attention's q (RoPE) in the attention's Q load (a qload lambda)",
  run,
};
