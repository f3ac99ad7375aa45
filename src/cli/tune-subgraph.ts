// The small graph `tfc tune` times one shape's candidates on: the group's distinct nodes with
// their operands as inputs, instead of the whole model. A candidate then costs one compile of its
// own 1-3 kernels and runs of those alone, and its check is a float64 run of those nodes alone
// (GPT-2 small: ~35 candidates in about two minutes instead of ~45 with whole-model runs).
//
// The kernels lowered from the sub-graph are the model's kernels for those nodes: operands keep
// their types, views/reshapes in front of an operand are copied (lowering folds them into the
// consumer's reads, so they shape its kernel), weights and inputs keep their names, nodes keep
// their scope (kernel names), and nodes that read the same operand in the model read the same
// input here (shared norm temps stay shared). test/unit/cli/tune-subgraph.test.ts compares the
// WGSL of both for GPT-2 and a Llama-style model.
import type { Graph, GraphOutput, Node } from '../graph/ir.js';
import { freezeGraph } from '../graph/rewrite.js';
import { getOp } from '../ops/catalog.js';

/** Ops lowering folds into their consumer's reads (kernel/lower/lower.ts): they belong to the consumer's kernel. */
const FOLDED_VIEW_OPS = new Set(['reshape', 'view']);

export interface TuneSubgraph {
  readonly graph: Graph;
  /**
   * Per node id of `graph`: how many nodes of the model it stands for (the distinct nodes of the
   * group; nodes of identical op, attributes and operand types lower to the same kernels).
   */
  readonly multiplicity: ReadonlyMap<number, number>;
  /** Sub-graph node id -> model node id, for the representatives. */
  readonly modelNode: ReadonlyMap<number, number>;
}

/** What decides a node's kernels besides its schedule: op, attributes, result and operand types. */
function signature(g: Graph, n: Node): string {
  const operandTypes = n.operands.map((o) => g.nodes[o]?.type);
  return JSON.stringify([n.op, n.attrs, n.type, operandTypes]);
}

/**
 * A row chunk of a weight (split-large-weights: rows [start, end) of the tensor `name`) as a
 * weight of its own, `name.rows[start:end]`: the kernels read the chunk's buffer alone either way,
 * and the seeded data then has the chunk's shape.
 */
function wholeChunk(n: Node, taken: Set<string>): Omit<Node, 'id'> {
  const { rows, total_rows: _total, name, ...attrs } = n.attrs;
  const range = rows?.kind === 'ints' ? rows.value.join(':') : '?';
  let chunk = `${name?.kind === 'str' ? name.value : `%${n.id}`}.rows[${range}]`;
  while (taken.has(chunk)) chunk = `${chunk}_`;
  taken.add(chunk);
  return { ...n, operands: [], attrs: { ...attrs, name: { kind: 'str', value: chunk } } };
}

/**
 * The sub-graph of `nodeIds` (one shape's matmul or attention nodes): one representative per
 * distinct signature, in model order, each an output; their operands become inputs named
 * `tune.%ID` (model weights and inputs keep theirs), through any folded views.
 */
export function tuneSubgraph(g: Graph, nodeIds: readonly number[]): TuneSubgraph {
  const reps: Node[] = [];
  const count = new Map<string, number>();
  for (const id of nodeIds) {
    const n = g.nodes[id];
    if (n === undefined) throw new Error(`internal: tune group names missing node %${id}`);
    const sig = signature(g, n);
    const seen = count.get(sig);
    if (seen === undefined) reps.push(n);
    count.set(sig, (seen ?? 0) + 1);
  }
  const nodes: Node[] = [];
  const copied = new Map<number, number>();
  const taken = new Set(g.nodes.flatMap((n) => (n.attrs['name']?.kind === 'str' ? [n.attrs['name'].value] : [])));
  const add = (n: Omit<Node, 'id'>): number => {
    const id = nodes.length;
    nodes.push({ ...n, id });
    return id;
  };
  const operandOf = (id: number): number => {
    const done = copied.get(id);
    if (done !== undefined) return done;
    const n = g.nodes[id];
    if (n === undefined) throw new Error(`internal: tune sub-graph: missing operand %${id}`);
    let out: number;
    if (n.op === 'weight' && n.attrs['rows'] !== undefined) out = add(wholeChunk(n, taken));
    else if (n.op === 'input' || n.op === 'weight' || n.op === 'const') out = add({ ...n, operands: [] });
    else if (FOLDED_VIEW_OPS.has(n.op)) out = add({ ...n, operands: n.operands.map(operandOf) });
    else {
      let name = `tune.%${n.id}`;
      while (taken.has(name)) name = `${name}_`;
      taken.add(name);
      const { scope: _scope, from: _from, ...rest } = n;
      out = add({ ...rest, op: 'input', operands: [], attrs: { name: { kind: 'str', value: name } } });
    }
    copied.set(id, out);
    return out;
  };
  const multiplicity = new Map<number, number>();
  const modelNode = new Map<number, number>();
  const outputs: GraphOutput[] = [];
  for (const r of reps) {
    const id = add({ ...r, operands: r.operands.map(operandOf) });
    copied.set(r.id, id);
    multiplicity.set(id, count.get(signature(g, r)) ?? 1);
    modelNode.set(id, r.id);
    outputs.push({ name: `tune.out%${r.id}`, value: id, loc: r.loc });
    // A second result of the node (fused_attention_lse) is written by the same kernel: keep it.
    for (const u of g.nodes) {
      if (u.operands[0] !== r.id || getOp(u.op)?.resultOf !== r.op) continue;
      const uid = add({ ...u, operands: u.operands.map(operandOf) });
      copied.set(u.id, uid);
      outputs.push({ name: `tune.out%${u.id}`, value: uid, loc: u.loc });
    }
  }
  return { graph: freezeGraph({ name: g.name, dims: g.dims, nodes, outputs }), multiplicity, modelNode };
}
