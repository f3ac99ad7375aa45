// rematerialize: recompute a cheap value next to its late uses instead of keeping it alive in
// between (activation recomputation for a training step, decided on the graph's own liveness).
//
// A training step's forward writes values its backward reads hundreds of nodes later: the norms'
// outputs (read again by the weight-gradient matmuls) and activations such as gelu's output. Each
// such value holds its buffer from the forward to the backward, so the memory plan (liveness-based
// reuse, src/runtime/memory.ts) keeps every layer's copy at the same time. When the value is cheap
// to compute and its operands are alive at the late use anyway (the norm's input is saved for the
// norm's own backward, gelu's pre-activation for gelu's), a clone right before the late use costs
// one memory-bound kernel and frees the buffer across the whole gap.
//
//   before                                         after
//   %9  = layernorm %6, %7, %8                     %9  = layernorm %6, %7, %8
//   %10 = matmul %9, %w       (forward)            %10 = matmul %9, %w
//   ... 200 nodes, %6 read again at %240 ...       ...
//   %250 = matmul %t, %9      (backward: dW)       %250 = layernorm %6, %7, %8   (clone)
//                                                  %251 = matmul %t, %250
//
// The decision is data (RematerializePolicy): which ops count as cheap, and how many nodes a gap
// must span. A value is recomputed only when (1) its op is in the policy, (2) it is not a graph
// output and has no second results, (3) the largest gap between two consecutive uses spans at
// least `minGap` nodes, and (4) every operand that is a computed value is used at or after the
// first late use anyway (so no other value's lifetime grows) and is not itself recomputed.
// Needs: nothing (runs last, after fusion: a fused_map or norm kernel is cloned whole).
// Keeps: every value's result; the clone keeps loc and scope (its kernel is the original's, which
// compilePlan shares by kernel key).
import { getOp, opsInFamily } from '../ops/catalog.js';
import type { Graph, Node } from '../graph/ir.js';
import { DefUse, isInterfaceNode, rebuildGraph } from '../graph/rewrite.js';
import { countRuleHits, type GraphPass } from './pass.js';

export interface RematerializePolicy {
  /** Ops whose values may be recomputed (cheap: elementwise, fused elementwise chains, norms). */
  readonly ops: ReadonlySet<string>;
  /** Nodes a gap between two uses must span before recomputing pays for a kernel. */
  readonly minGap: number;
}

/** The default: every elementwise catalog op, fused elementwise maps and the two norms; gaps of 32+ nodes. */
export function defaultRematerializePolicy(): RematerializePolicy {
  const ops = new Set<string>(['fused_map', 'layernorm', 'rmsnorm']);
  for (const op of opsInFamily('elementwise')) ops.add(op.name);
  return { ops, minGap: 32 };
}

/** A chosen value: its late uses (node ids, ascending) move to a clone placed before the first. */
interface Choice {
  readonly node: Node;
  readonly lateFrom: number;
}

/** Positions at which each value is read (ascending, one entry per reading node). */
function usePositions(g: Graph, du: DefUse): number[][] {
  return g.nodes.map((n) => [...new Set(du.users(n.id).map((u) => u.id))].sort((a, b) => a - b));
}

export function chooseRematerializations(g: Graph, policy: RematerializePolicy): Choice[] {
  const du = new DefUse(g);
  const uses = usePositions(g, du);
  const lastUse = (id: number): number => (du.isOutput(id) ? Infinity : (uses[id]?.at(-1) ?? -1));
  // A second result (resultOf: it reads its producer, operand 0) and its producer stay single.
  const isSecondResult = (n: Node): boolean => getOp(n.op)?.resultOf !== undefined;
  const hasSecondResults = new Set(g.nodes.filter(isSecondResult).map((n) => n.operands[0]));
  const chosen = new Set<number>();
  const out: Choice[] = [];
  for (const n of g.nodes) {
    if (!policy.ops.has(n.op) || isInterfaceNode(n) || du.isOutput(n.id) || hasSecondResults.has(n.id) || isSecondResult(n)) continue;
    const at = uses[n.id] ?? [];
    let best = -1;
    let gap = 0;
    for (let i = 1; i < at.length; i++) {
      const d = (at[i] ?? 0) - (at[i - 1] ?? 0);
      if (d > gap) [gap, best] = [d, i];
    }
    if (best < 0 || gap < policy.minGap) continue;
    const lateFrom = at[best] ?? 0;
    const operandsAlive = n.operands.every((o) => {
      const m = g.nodes[o];
      return m === undefined || isInterfaceNode(m) || m.op === 'const' || (!chosen.has(o) && lastUse(o) >= lateFrom);
    });
    if (!operandsAlive) continue;
    chosen.add(n.id);
    out.push({ node: n, lateFrom });
  }
  return out;
}

/** `g` with each chosen value recomputed right before its first late use. */
export function rematerialize(g: Graph, choices: readonly Choice[]): Graph {
  if (choices.length === 0) return g;
  const before = new Map<number, Choice[]>();
  for (const c of choices) before.set(c.lateFrom, [...(before.get(c.lateFrom) ?? []), c]);
  const cloneOf = new Map<number, number>();
  const lateFromOf = new Map(choices.map((c) => [c.node.id, c.lateFrom]));
  return rebuildGraph(g, (n, r) => {
    for (const c of before.get(n.id) ?? []) cloneOf.set(c.node.id, r.copy(c.node));
    const operands = n.operands.map((o) => {
      const from = lateFromOf.get(o);
      const clone = cloneOf.get(o);
      return from !== undefined && clone !== undefined && n.id >= from ? clone : r.mapped(o);
    });
    return r.b.copy(n, operands);
  });
}

export const rematerializeActivations: GraphPass = {
  name: 'rematerialize',
  summary: 'recompute cheap values (norms, elementwise) next to late uses instead of keeping them alive across the gap (training steps)',
  run: (g, ctx) => {
    const choices = chooseRematerializations(g, defaultRematerializePolicy());
    if (choices.length === 0) return g;
    countRuleHits(ctx, 'rematerialize/recompute', choices.length);
    return rematerialize(g, choices);
  },
};
