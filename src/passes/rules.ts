// Named rewrite rules applied to a fixed point (tinygrad's PatternMatcher, MLIR's greedy
// driver): each rule reads in isolation; the engine rebuilds the graph immutably, records hit
// counts in ctx.stats, removes nodes its rewrites left unused, and stops at a sweep cap.
import { InternalError } from '../diag/diagnostic.js';
import type { Graph, Node } from '../graph/ir.js';
import { GraphBuilder, type NodeSpec, isInterfaceNode, removeDeadNodes } from '../graph/rewrite.js';
import { printType, typeEquals } from '../graph/types.js';
import { countRuleHits, type PassContext } from './pass.js';

/** What a rule sees: the graph being built (every operand of the matched node is final in it). */
export interface RuleContext {
  /** A node of the graph being built (ids are new ids; the matched node's operands are new ids). */
  node(id: number): Node;
  /** Appends a node before the matched one; loc (and scope) default to the matched node's. */
  emit(spec: Omit<NodeSpec, 'loc'> & { readonly loc?: NodeSpec['loc'] }): number;
}

/**
 * `match` returns what `rewrite` needs, or undefined when the rule does not apply; `rewrite`
 * returns the value (an id in the graph being built) that replaces the node. The replacement
 * must have the node's type.
 */
export interface RuleDef<M> {
  readonly name: string;
  match(node: Node, ctx: RuleContext): M | undefined;
  rewrite(node: Node, m: M, ctx: RuleContext): number;
}

/** A rule with its match type erased, so rules of different kinds share one array. */
export interface Rule {
  readonly name: string;
  apply(node: Node, ctx: RuleContext): number | undefined;
}

export function defineRule<M>(def: RuleDef<M>): Rule {
  return {
    name: def.name,
    apply: (node, ctx) => {
      const m = def.match(node, ctx);
      return m === undefined ? undefined : def.rewrite(node, m, ctx);
    },
  };
}

export interface ApplyRulesOptions {
  /** Recorded as `pass/rule` in ctx.stats.ruleHits and named in errors. */
  readonly pass: string;
  /** Most sweeps over the graph before giving up (a rule set that does not terminate is a bug). */
  readonly maxSweeps?: number;
}

/** Applies `rules` in order to every node, sweep after sweep, until a sweep changes nothing. */
export function applyRules(g: Graph, rules: readonly Rule[], ctx: PassContext, opts: ApplyRulesOptions): Graph {
  const cap = opts.maxSweeps ?? 50;
  let cur = g;
  for (let sweep = 0; sweep < cap; sweep++) {
    const { graph, hits } = sweepOnce(cur, rules, ctx, opts.pass);
    if (hits === 0) return cur;
    cur = graph;
  }
  throw new InternalError(`rules of ${opts.pass} did not reach a fixed point in ${cap} sweeps`, opts.pass);
}

function sweepOnce(g: Graph, rules: readonly Rule[], ctx: PassContext, pass: string): { graph: Graph; hits: number } {
  const b = new GraphBuilder();
  const map: number[] = []; // old id -> new id
  const origin: (number | undefined)[] = []; // new id -> old id it copies (undefined: made by a rule)
  let hits = 0;
  for (const n of g.nodes) {
    const operands = n.operands.map((o) => mapped(map, o));
    const candidate: Node = { ...n, id: b.size, operands };
    let replacement: number | undefined;
    for (const r of rules) {
      const ruleCtx: RuleContext = {
        node: (id) => b.node(id),
        emit: (spec) => {
          const scope = spec.scope ?? n.scope; // kernel names follow the matched node's source scope
          const id = b.add({ ...spec, loc: spec.loc ?? n.loc, ...(scope !== undefined ? { scope } : {}) });
          origin[id] = undefined;
          return id;
        },
      };
      replacement = r.apply(candidate, ruleCtx);
      if (replacement !== undefined) {
        const t = b.node(replacement).type;
        if (!typeEquals(t, n.type)) {
          throw new InternalError(`rule ${r.name} replaced %${n.id} (${n.op}) of type ${printType(n.type)} by a value of type ${printType(t)}`, pass);
        }
        hits++;
        countRuleHits(ctx, `${pass}/${r.name}`);
        break;
      }
    }
    if (replacement === undefined) {
      replacement = b.copy(n, operands);
      origin[replacement] = n.id;
    }
    map[n.id] = replacement;
  }
  const outputs = g.outputs.map((o) => ({ ...o, value: mapped(map, o.value) }));
  const built = b.finish(g, outputs);
  if (hits === 0) return { graph: g, hits };
  // Drop what the rewrites left unused: nodes made by rules, and copies of nodes that had a use
  // before. Nodes that were already dead stay (removing them is eliminate-dead-code's job).
  const usedBefore = usedSet(g);
  return { graph: removeDeadNodes(built, (n) => {
    const o = origin[n.id];
    return isInterfaceNode(n) || (o !== undefined && !usedBefore[o]);
  }), hits };
}

function mapped(map: readonly number[], id: number): number {
  const v = map[id];
  if (v === undefined) throw new InternalError(`rewrite: value %${id} used before its definition`);
  return v;
}

function usedSet(g: Graph): boolean[] {
  const used = new Array<boolean>(g.nodes.length).fill(false);
  for (const n of g.nodes) for (const o of n.operands) used[o] = true;
  for (const o of g.outputs) used[o.value] = true;
  return used;
}

