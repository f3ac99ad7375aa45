// `grad`: reverse-mode differentiation of a graph. The result graph holds the forward nodes
// (copied, same ids) and then the backward: for each forward node, in reverse order, its
// catalog entry's `vjp` turns the cotangent of its result into cotangents of its operands;
// a value read by several nodes adds their contributions. Outputs: the differentiated output
// (the loss) and one gradient per weight (and per requested input), `grad.<name>`, of the
// weight's type. The transform knows no op: every rule lives with its op (src/ops/*.ts).
// docs/autodiff.md walks through it.
import { type Diagnostic, diag } from '../diag/diagnostic.js';
import { InternalError } from '../diag/diagnostic.js';
import { type Graph, type GraphOutput, type Node, strAttr } from '../graph/ir.js';
import { GraphBuilder, keepNodes } from '../graph/rewrite.js';
import { isFloat, printType, shapeEquals } from '../graph/types.js';
import { getOp } from '../ops/catalog.js';
import { LambdaGradError } from '../ops/lambda-grad.js';
import { NodeGradBuilder } from './builder.js';

export interface GradOptions {
  /** The output to differentiate. A scalar is seeded with 1; any other output's cotangent is an input, `cotangent.<output>`. */
  readonly output: string;
  /** Weights to differentiate w.r.t., by safetensors name (default: every float weight). */
  readonly weights?: readonly string[];
  /** Inputs to differentiate w.r.t., by name (default: none). */
  readonly inputs?: readonly string[];
  /** Keep the forward graph's other outputs (default: only the differentiated one and the gradients). */
  readonly keepOutputs?: boolean;
}

export interface Gradient {
  /** The weight's or input's name. */
  readonly of: string;
  readonly kind: 'weight' | 'input';
  /** Its output name, `grad.<of>`. */
  readonly output: string;
}

export interface GradResult {
  readonly graph: Graph;
  readonly gradients: readonly Gradient[];
  /** Nodes [0, forwardNodes) are the forward pass, the rest the backward. */
  readonly forwardNodes: number;
  /** Forward values the backward reads, besides weights, inputs and constants: the saved activations. */
  readonly saved: readonly number[];
  /** The input holding the output's cotangent, when the output is not a scalar. */
  readonly seed?: string;
}

export const gradName = (name: string): string => `grad.${name}`;

/** Each differentiated weight's (input's) name -> the node holding its gradient in `r.graph` (src/train/step.ts's `gradOf`). */
export function gradientNodes(r: GradResult): Map<string, number> {
  const byName = new Map(r.graph.outputs.map((o) => [o.name, o.value]));
  return new Map(r.gradients.flatMap((g) => {
    const v = byName.get(g.output);
    return v === undefined ? [] : [[g.of, v] as const];
  }));
}
export const cotangentName = (output: string): string => `cotangent.${output}`;

/** The backward graph of `g`; undefined after reporting a user error (no such output, an op without a rule). */
export function gradGraph(g: Graph, opts: GradOptions, report: (d: Diagnostic) => void): GradResult | undefined {
  const out = g.outputs.find((o) => o.name === opts.output);
  if (out === undefined) {
    report(diag('TFC317', g.outputs[0]?.loc ?? g.nodes[0]?.loc ?? { file: '<graph>', line: 1, col: 1, endLine: 1, endCol: 1 }, `no output '${opts.output}' to differentiate (outputs: ${g.outputs.map((o) => o.name).join(', ')})`));
    return undefined;
  }
  const lossNode = g.nodes[out.value];
  if (lossNode === undefined || !isFloat(lossNode.type.dtype)) {
    report(diag('TFC317', out.loc, `output '${opts.output}' is ${lossNode === undefined ? 'missing' : printType(lossNode.type)}, not a float tensor`));
    return undefined;
  }
  const wrt = selectWrt(g, opts);
  // origin[id]: a differentiated source whose value reaches node id (for messages), or undefined.
  const origin: (Node | undefined)[] = g.nodes.map(() => undefined);
  for (const n of g.nodes) {
    if (!isFloat(n.type.dtype)) continue;
    if (wrt.has(n.id)) origin[n.id] = n;
    else for (const o of n.operands) origin[n.id] ??= origin[o];
  }

  const b = new GraphBuilder();
  for (const n of g.nodes) b.copy(n, n.operands);
  const forwardCount = g.nodes.length;
  const gb = new NodeGradBuilder(b, out.loc);
  let seedName: string | undefined;
  let seed: number;
  if (lossNode.type.shape.length === 0) seed = gb.constant(1, lossNode.type.dtype);
  else {
    seedName = cotangentName(opts.output);
    seed = b.add({ op: 'input', operands: [], attrs: { name: { kind: 'str', value: seedName } }, type: lossNode.type, loc: out.loc });
  }

  const contributions = new Map<number, number[]>([[out.value, [seed]]]);
  const total = (id: number): number | undefined => {
    const parts = contributions.get(id);
    if (parts === undefined) return undefined;
    // One sum per value, in contribution order (deterministic).
    const sum = parts.reduce((acc, p) => gb.op('add', acc, p));
    contributions.set(id, [sum]);
    return sum;
  };
  // Cotangents of second results (`resultOf` ops: fused_attention_lse), per producer and op name:
  // the producer's vjp receives them (VjpArgs.results).
  const resultCotangents = new Map<number, Map<string, number>>();
  for (let id = forwardCount - 1; id >= 0; id--) {
    const n = g.nodes[id];
    if (n === undefined || origin[id] === undefined || n.operands.length === 0) continue;
    const op = getOp(n.op);
    const producer = n.operands[0];
    if (op?.resultOf !== undefined && producer !== undefined) {
      const dr = total(id);
      if (dr === undefined) continue;
      gb.at(n.loc, n.scope === undefined ? undefined : `${n.scope}_grad`);
      const mine = resultCotangents.get(producer) ?? new Map<string, number>();
      const prev = mine.get(n.op);
      mine.set(n.op, prev === undefined ? dr : gb.op('add', prev, dr));
      resultCotangents.set(producer, mine);
      continue;
    }
    const results = resultCotangents.get(id);
    const own = total(id);
    if (own === undefined && results === undefined) continue;
    const needs = n.operands.map((o) => origin[o] !== undefined);
    if (!needs.some(Boolean)) continue;
    const from = origin[id];
    const what = from === undefined ? '' : ` on the path from ${from.op} '${strAttr(from, 'name')}' to '${opts.output}'`;
    if (op?.vjp === undefined) {
      report(diag('TFC316', n.loc, `cannot differentiate ${n.op}${what}: ${op?.noGrad ?? 'the op has no gradient rule'}`));
      return undefined;
    }
    gb.at(n.loc, n.scope === undefined ? undefined : `${n.scope}_grad`);
    // Only a second result carries a cotangent: the node's own result contributes zeros.
    const dy = own ?? gb.zeros(n.type);
    let dxs: readonly (number | undefined)[];
    try {
      dxs = op.vjp(gb, { node: n, x: n.operands, y: id, dy, needs, ...(results !== undefined ? { results } : {}) });
    } catch (e) {
      if (!(e instanceof LambdaGradError)) throw e;
      report(diag('TFC316', n.loc, `cannot differentiate ${n.op}${what}: ${e.message}`));
      return undefined;
    }
    n.operands.forEach((o, i) => {
      if (!needs[i]) return;
      const dx = dxs[i];
      const want = g.nodes[o]?.type;
      if (dx === undefined || want === undefined) throw new InternalError(`grad: ${n.op} gave no cotangent for operand ${i} (%${o})`);
      const got = gb.type(dx);
      if (got.dtype !== want.dtype || !shapeEquals(got.shape, want.shape)) {
        throw new InternalError(`grad: ${n.op}'s cotangent for operand ${i} is ${printType(got)}, the operand ${printType(want)}`);
      }
      const list = contributions.get(o);
      if (list === undefined) contributions.set(o, [dx]);
      else list.push(dx);
    });
  }

  const gradients: Gradient[] = [];
  const outputs: GraphOutput[] = opts.keepOutputs === true ? [...g.outputs] : [out];
  for (const id of [...wrt].sort((x, y) => x - y)) {
    const n = g.nodes[id];
    if (n === undefined) continue;
    const name = strAttr(n, 'name');
    gb.at(n.loc, undefined);
    // A weight the output does not depend on gets zeros (PyTorch would give None).
    const value = total(id) ?? gb.zeros(n.type);
    const output = gradName(name);
    gradients.push({ of: name, kind: n.op === 'weight' ? 'weight' : 'input', output });
    outputs.push({ name: output, value, loc: n.loc });
  }
  const full = b.finish(g, outputs);
  const { graph, newId } = dropDead(full);
  const forwardNodes = g.nodes.filter((n) => newId[n.id] !== undefined).length;
  const saved = new Set<number>();
  for (const n of graph.nodes.slice(forwardNodes)) {
    for (const o of n.operands) {
      const m = graph.nodes[o];
      if (o < forwardNodes && m !== undefined && m.op !== 'input' && m.op !== 'weight' && m.op !== 'const') saved.add(o);
    }
  }
  return { graph, gradients, forwardNodes, saved: [...saved].sort((x, y) => x - y), ...(seedName !== undefined ? { seed: seedName } : {}) };
}

/** The float weights (and requested inputs) to differentiate, by node id. */
function selectWrt(g: Graph, opts: GradOptions): Set<number> {
  const weights = opts.weights === undefined ? undefined : new Set(opts.weights);
  const inputs = new Set(opts.inputs ?? []);
  const ids = new Set<number>();
  for (const n of g.nodes) {
    if (!isFloat(n.type.dtype)) continue;
    if (n.op === 'weight' && (weights === undefined || weights.has(strAttr(n, 'name')))) ids.add(n.id);
    if (n.op === 'input' && inputs.has(strAttr(n, 'name'))) ids.add(n.id);
  }
  return ids;
}

/** Removes nodes no output reads (inputs and weights stay), with the old-to-new id map. */
function dropDead(g: Graph): { graph: Graph; newId: (number | undefined)[] } {
  const live = g.nodes.map((n) => n.op === 'input' || n.op === 'weight');
  for (const o of g.outputs) live[o.value] = true;
  for (let i = g.nodes.length - 1; i >= 0; i--) if (live[i] === true) for (const o of g.nodes[i]?.operands ?? []) live[o] = true;
  const newId: (number | undefined)[] = [];
  let next = 0;
  live.forEach((l, i) => {
    if (l) newId[i] = next++;
  });
  return { graph: keepNodes(g, live), newId };
}
