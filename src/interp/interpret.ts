// The float64 reference interpreter: binds the symbolic dims from the fed tensors' shapes, then
// evaluates the graph one node at a time with each op's catalog `interp` rule. It is the ground
// truth for every backend, so it stays naive: no fusion, no reuse of kernel code.
import { type Dim, dimEval, dimVars, printDim } from '../base/dim.js';
import { InternalError } from '../diag/diagnostic.js';
import { type Graph, type Node, strAttr } from '../graph/ir.js';
import { type TensorType, printType } from '../graph/types.js';
import { getOp } from '../ops/catalog.js';
import { fedShape } from '../ops/source.js';
import type { Tensor64 } from '../base/tensor.js';
import { InterpError } from '../ops/errors.js';

export interface Feeds {
  readonly inputs: ReadonlyMap<string, Tensor64>;
  readonly weights: ReadonlyMap<string, Tensor64>;
}

export interface InterpretOptions {
  /** Dims given up front (e.g. `--set T=16`); fed shapes must agree with them. */
  readonly dims?: ReadonlyMap<string, number>;
}

export interface InterpretResult {
  readonly outputs: Map<string, Tensor64>;
  readonly dims: Map<string, number>;
}

type SourceOp = 'input' | 'weight';

function sourceKind(node: Node): SourceOp | undefined {
  return node.op === 'input' || node.op === 'weight' ? node.op : undefined;
}

function shapeText(shape: readonly number[]): string {
  return `[${shape.join(',')}]`;
}

/** A dim that is exactly one variable (`T`, not `P+T` or `2*T`). */
function singleVar(d: Dim): string | undefined {
  const [t] = d.terms;
  if (d.terms.length !== 1 || t === undefined || t.coef !== 1 || t.vars.length !== 1) return undefined;
  return t.vars[0];
}

interface Pending {
  readonly dim: Dim;
  readonly value: number;
  readonly where: string; // `input "past.0.key" axis 2`
  readonly node: Node;
}

/**
 * Binds every symbolic dim used in an input or weight declaration from the fed shapes: a dim that
 * is a single variable binds directly; a composite one (`P + T`) is then checked, or solved for its
 * one unknown variable when that appears linearly (`P + T` = 9 with T = 5 gives P = 4).
 */
export function bindDims(graph: Graph, feeds: Feeds, preset: ReadonlyMap<string, number> = new Map()): Map<string, number> {
  const dims = new Map(preset);
  const origin = new Map<string, string>([...preset.keys()].map((k) => [k, 'given up front']));
  const pending: Pending[] = [];
  const bind = (name: string, value: number, where: string, node: Node): void => {
    const prev = dims.get(name);
    if (prev === undefined) {
      dims.set(name, value);
      origin.set(name, where);
    } else if (prev !== value) {
      throw new InterpError('TFC307', `dim ${name} is ${value} from ${where} but ${prev} from ${origin.get(name) ?? '?'}`, node.loc);
    }
  };
  for (const node of graph.nodes) {
    const kind = sourceKind(node);
    if (kind === undefined) continue;
    const name = strAttr(node, 'name');
    const t = (kind === 'input' ? feeds.inputs : feeds.weights).get(name);
    if (t === undefined) {
      throw new InterpError('TFC302', `${kind} "${name}" is missing (the model declares ${printType(node.type)})`, node.loc);
    }
    const mismatch = (): InterpError =>
      new InterpError('TFC303', `${kind} "${name}" is ${t.dtype}${shapeText(t.shape)} but the model declares ${printType(node.type)}`, node.loc);
    const shape = fedShape(node); // a row chunk of a split weight is fed the whole table
    if (t.dtype !== node.type.dtype || t.shape.length !== shape.length) throw mismatch();
    shape.forEach((d, axis) => {
      const value = t.shape[axis] ?? -1;
      const where = `${kind} "${name}" axis ${axis}`;
      const v = singleVar(d);
      if (v !== undefined) bind(v, value, where, node);
      else if (dimVars(d).length === 0) {
        if (dimEval(d, dims) !== value) throw mismatch();
      } else pending.push({ dim: d, value, where, node });
    });
  }
  // Composite dims: check, or solve for a single linear unknown, until nothing changes.
  let progress = true;
  while (pending.length > 0 && progress) {
    progress = false;
    for (let i = 0; i < pending.length; i++) {
      const p = pending[i];
      if (p === undefined) continue;
      const unbound = dimVars(p.dim).filter((v) => !dims.has(v));
      if (unbound.length === 0) {
        const expected = dimEval(p.dim, dims);
        if (expected !== p.value) {
          const env = dimVars(p.dim).map((v) => `${v}=${dims.get(v) ?? '?'}`).join(', ');
          throw new InterpError('TFC307', `${p.where} is ${p.value} but ${printDim(p.dim)} = ${expected ?? '?'} (${env})`, p.node.loc);
        }
      } else if (unbound.length === 1 && unbound[0] !== undefined) {
        const v = unbound[0];
        const terms = p.dim.terms.filter((t) => t.vars.includes(v));
        const [term] = terms;
        if (terms.length !== 1 || term === undefined || term.vars.length !== 1) continue; // v not linear
        const rest = p.dim.terms.filter((t) => t !== term).reduce((s, t) => s + t.coef * t.vars.reduce((m, x) => m * (dims.get(x) ?? NaN), 1), 0);
        const solved = (p.value - rest) / term.coef;
        if (!Number.isInteger(solved) || solved < 0) {
          throw new InterpError('TFC307', `${p.where} is ${p.value}, which no non-negative integer ${v} gives for ${printDim(p.dim)}`, p.node.loc);
        }
        bind(v, solved, `${p.where} (${printDim(p.dim)})`, p.node);
      } else continue;
      pending.splice(i, 1);
      i--;
      progress = true;
    }
  }
  const [stuck] = pending;
  if (stuck !== undefined) {
    const unbound = dimVars(stuck.dim).filter((v) => !dims.has(v));
    throw new InterpError('TFC306', `dim ${unbound.join(', ')} has no value: ${stuck.where} is ${printDim(stuck.dim)} and no input binds it alone`, stuck.node.loc);
  }
  return dims;
}

/** The node's result shape under the dims; TFC306 for an unbound dim, TFC206 for a negative one. */
function concreteShapeOf(node: Node, type: TensorType, dims: ReadonlyMap<string, number>): number[] {
  return type.shape.map((d) => {
    const v = dimEval(d, dims);
    if (v === undefined) {
      const missing = dimVars(d).filter((x) => !dims.has(x));
      throw new InterpError('TFC306', `dim ${missing.join(', ')} has no value at run time (needed by ${node.op} : ${printType(type)})`, node.loc);
    }
    if (v < 0) throw new InterpError('TFC206', `dim ${printDim(d)} is ${v} at run time (in ${node.op} : ${printType(type)})`, node.loc);
    return v;
  });
}

/** Runs the graph on float64 tensors; returns the outputs by name and the bound dims. */
export function interpret(graph: Graph, feeds: Feeds, options: InterpretOptions = {}): InterpretResult {
  const dims = bindDims(graph, feeds, options.dims);
  const values: (Tensor64 | undefined)[] = new Array<Tensor64 | undefined>(graph.nodes.length);
  // Free each intermediate after its last use (outputs are kept).
  const lastUse = new Array<number>(graph.nodes.length).fill(-1);
  // An op that is a second result of its operand's producer (`resultOf`) reads the producer's operands.
  const producerOf = (n: Node): Node | undefined => (getOp(n.op)?.resultOf === undefined ? undefined : graph.nodes[n.operands[0] ?? -1]);
  for (const n of graph.nodes) for (const o of [...n.operands, ...(producerOf(n)?.operands ?? [])]) lastUse[o] = Math.max(lastUse[o] ?? -1, n.id);
  for (const o of graph.outputs) lastUse[o.value] = Infinity;
  const feed = (op: SourceOp, name: string): Tensor64 | undefined => (op === 'input' ? feeds.inputs : feeds.weights).get(name);

  graph.nodes.forEach((node, i) => {
    if (node.id !== i) throw new InternalError(`node %${node.id} is at position ${i}`);
    const op = getOp(node.op);
    if (op === undefined) throw new InternalError(`unknown op '${node.op}' at %${node.id}`);
    const shape = concreteShapeOf(node, node.type, dims);
    const producer = op.resultOf === undefined ? undefined : graph.nodes[node.operands[0] ?? -1];
    if (op.resultOf !== undefined && producer?.op !== op.resultOf) throw new InternalError(`%${node.id} (${node.op}) needs a ${op.resultOf} operand`);
    const operands = (producer?.operands ?? node.operands).map((id) => {
      const v = values[id];
      if (v === undefined) throw new InternalError(`%${node.id} (${node.op}) uses %${id} before it has a value`);
      return v;
    });
    let result: Tensor64;
    try {
      result = op.interp(operands, producer === undefined ? { node, dims, shape, feed } : { node, dims, shape, feed, producer });
    } catch (e) {
      if (e instanceof InterpError && e.loc === undefined) throw new InterpError(e.code, e.message, node.loc);
      throw e;
    }
    if (result.dtype !== node.type.dtype || result.shape.length !== shape.length || result.shape.some((d, k) => d !== shape[k])) {
      throw new InternalError(
        `%${node.id} (${node.op}) produced ${result.dtype}${shapeText(result.shape)}, expected ${node.type.dtype}${shapeText(shape)}`,
      );
    }
    values[i] = result;
    for (const o of [...node.operands, ...(producer?.operands ?? [])]) if (lastUse[o] === node.id) values[o] = undefined;
  });

  const outputs = new Map<string, Tensor64>();
  for (const o of graph.outputs) {
    const v = values[o.value];
    if (v === undefined) throw new InternalError(`output "${o.name}" refers to %${o.value}, which has no value`);
    outputs.set(o.name, v);
  }
  return { outputs, dims };
}
