// Helpers that rebuild graphs immutably for the passes (src/passes): a builder that appends
// nodes with fresh ids, renumbering after nodes are dropped, replacing uses, and removing dead
// nodes. Nothing here edits a node or graph in place; results are frozen.
import type { Span } from '../diag/span.js';
import type { Attrs, Graph, GraphOutput, Node } from './ir.js';
import type { TensorType } from './types.js';

/** Deep-freezes a graph (nodes, attrs, types, spans) and returns it. */
export function freezeGraph(g: Graph): Graph {
  deepFreeze(g);
  return g;
}

function deepFreeze(x: unknown): void {
  if (x === null || typeof x !== 'object' || Object.isFrozen(x)) return;
  Object.freeze(x);
  for (const v of Object.values(x)) deepFreeze(v);
}

/**
 * Inputs and weights are the model's interface: passes never remove or merge them, even when
 * nothing reads them (a safetensors file must still match the declared names).
 */
export function isInterfaceNode(n: Node): boolean {
  return n.op === 'input' || n.op === 'weight';
}

/** One use of a value: the node reading it and the operand position it reads it at. */
export interface Use {
  readonly user: Node;
  readonly operand: number;
}

/**
 * Def-use facts of one graph, computed once: every value's uses in node order (a node reading a
 * value twice is two uses) and whether it is a graph output. The passes ask this instead of
 * building their own users maps.
 */
export class DefUse {
  private readonly useLists: Use[][];
  private readonly outputs: Set<number>;

  constructor(readonly g: Graph) {
    this.useLists = g.nodes.map(() => []);
    for (const n of g.nodes) n.operands.forEach((o, operand) => this.useLists[o]?.push({ user: n, operand }));
    this.outputs = new Set(g.outputs.map((o) => o.value));
  }

  node(id: number): Node {
    const n = this.g.nodes[id];
    if (n === undefined) throw new Error(`internal: no node %${id}`);
    return n;
  }

  uses(id: number): readonly Use[] {
    return this.useLists[id] ?? [];
  }

  /** The user of each use (a node reading the value twice appears twice). */
  users(id: number): readonly Node[] {
    return this.uses(id).map((u) => u.user);
  }

  /** Each node reading the value, once. */
  distinctUsers(id: number): readonly Node[] {
    return [...new Set(this.users(id))];
  }

  isOutput(id: number): boolean {
    return this.outputs.has(id);
  }
}

/** What a rebuild's `emit` may do besides returning an id. */
export interface Rebuilder {
  readonly b: GraphBuilder;
  /** The new id of an old node already emitted (throws for one not emitted, or dropped). */
  mapped(id: number): number;
  /** `n` copied with its operands mapped. */
  copy(n: Node): number;
  /** Maps old node `old` (dropped when it came) to `id`: a value a later node's rewrite provides (a second result). */
  bind(old: number, id: number): void;
}

/**
 * Rebuilds `g` node by node: `emit(n, r)` returns the new id of old node `n` (its replacement, a
 * copy with `r.copy(n)`, or an id emitted earlier), or undefined when `n` is dropped (folded into
 * a later node). Outputs are remapped, then dead nodes removed (inputs and weights stay).
 */
export function rebuildGraph(g: Graph, emit: (n: Node, r: Rebuilder) => number | undefined): Graph {
  const b = new GraphBuilder();
  const { map, mapped } = idRemap();
  const r: Rebuilder = {
    b,
    mapped,
    copy: (n) => b.copy(n, n.operands.map(mapped)),
    bind: (old, id) => {
      map[old] = id;
    },
  };
  for (const n of g.nodes) {
    const id = emit(n, r);
    if (id !== undefined) map[n.id] = id;
  }
  return removeDeadNodes(b.finish(g, g.outputs.map((o) => ({ ...o, value: mapped(o.value) }))));
}

/** How many times each node id is used as an operand or output. */
export function useCounts(g: Graph): number[] {
  const uses = new Array<number>(g.nodes.length).fill(0);
  for (const n of g.nodes) for (const o of n.operands) uses[o] = (uses[o] ?? 0) + 1;
  for (const o of g.outputs) uses[o.value] = (uses[o.value] ?? 0) + 1;
  return uses;
}

/** What a new node needs; `id` is assigned by the builder. */
export interface NodeSpec {
  readonly op: string;
  readonly operands: readonly number[];
  readonly attrs: Attrs;
  readonly type: TensorType;
  readonly loc: Span;
  readonly from?: readonly Span[];
  /** Source scope for kernel names (Node.scope); a rewrite passes on the scope of what it replaces. */
  readonly scope?: string;
}

/** Appends nodes in order with ids equal to their positions. */
export class GraphBuilder {
  private readonly nodes: Node[] = [];

  get size(): number {
    return this.nodes.length;
  }

  node(id: number): Node {
    const n = this.nodes[id];
    if (n === undefined) throw new Error(`internal: GraphBuilder has no node %${id}`);
    return n;
  }

  add(spec: NodeSpec): number {
    const id = this.nodes.length;
    const base: Node = { id, op: spec.op, operands: [...spec.operands], attrs: spec.attrs, type: spec.type, loc: spec.loc };
    const withFrom = spec.from === undefined ? base : { ...base, from: spec.from };
    this.nodes.push(spec.scope === undefined ? withFrom : { ...withFrom, scope: spec.scope });
    return id;
  }

  /** Copies `n` with its operands remapped (fields other than id and operands are shared). */
  copy(n: Node, operands: readonly number[]): number {
    return this.add(n.from === undefined ? { ...n, operands } : { ...n, operands, from: n.from });
  }

  finish(g: Pick<Graph, 'name' | 'dims'>, outputs: readonly GraphOutput[]): Graph {
    return freezeGraph({ name: g.name, dims: g.dims, nodes: [...this.nodes], outputs: [...outputs] });
  }
}

/**
 * Old id -> new id for a pass that rebuilds a graph without the nodes it fused away:
 * `map[old] = b.add(...)`; `mapped(old)` throws on an id not copied (yet, or at all).
 */
export function idRemap(): { readonly map: number[]; readonly mapped: (id: number) => number } {
  const map: number[] = [];
  const mapped = (id: number): number => {
    const v = map[id];
    if (v === undefined) throw new Error(`internal: %${id} used before definition or was fused away`);
    return v;
  };
  return { map, mapped };
}

/** Keeps the nodes for which `keep[id]` is true, renumbering ids, operands and outputs. */
export function keepNodes(g: Graph, keep: readonly boolean[]): Graph {
  const b = new GraphBuilder();
  const map = new Map<number, number>();
  for (const n of g.nodes) {
    if (keep[n.id] !== true) continue;
    map.set(n.id, b.copy(n, n.operands.map((o) => remap(map, o))));
  }
  return b.finish(g, g.outputs.map((o) => ({ ...o, value: remap(map, o.value) })));
}

function remap(map: ReadonlyMap<number, number>, id: number): number {
  const v = map.get(id);
  if (v === undefined) throw new Error(`internal: value %${id} is used but was removed`);
  return v;
}

/**
 * Replaces every use of value `from` by `to` (operands and outputs). `to` must be defined
 * before every use of `from`; the node `from` stays (removeDeadNodes drops it).
 */
export function replaceAllUses(g: Graph, from: number, to: number): Graph {
  const sub = (o: number): number => (o === from ? to : o);
  const nodes = g.nodes.map((n) => (n.operands.includes(from) ? { ...n, operands: n.operands.map(sub) } : n));
  const outputs = g.outputs.map((o) => (o.value === from ? { ...o, value: to } : o));
  return freezeGraph({ ...g, nodes, outputs });
}

/**
 * Drops nodes that no output depends on, except those for which `isRoot` holds (by default the
 * inputs and weights) and everything they use.
 */
export function removeDeadNodes(g: Graph, isRoot: (n: Node) => boolean = isInterfaceNode): Graph {
  const live = new Array<boolean>(g.nodes.length).fill(false);
  for (const o of g.outputs) live[o.value] = true;
  for (const n of g.nodes) if (isRoot(n)) live[n.id] = true;
  for (let i = g.nodes.length - 1; i >= 0; i--) {
    const n = g.nodes[i];
    if (n === undefined || live[i] !== true) continue;
    for (const o of n.operands) live[o] = true;
  }
  if (live.every((x) => x)) return g;
  return keepNodes(g, live);
}
