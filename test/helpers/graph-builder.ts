// Builds Graph values by hand for tests, inferring each node's type with the catalog's rule.
// `b.op('add', [x, y])` returns the new node's id; a rule error throws (tests of errors call inferType).
import { type Dim, dimConst, parseDim } from '../../src/base/dim.js';
import type { Span } from '../../src/diag/span.js';
import type { Attrs, Graph, GraphOutput, Node } from '../../src/graph/ir.js';
import type { DType, TensorType } from '../../src/graph/types.js';
import { getOp } from '../../src/ops/catalog.js';
import type { OpError } from '../../src/ops/define.js';
import { type Tensor64, makeTensor } from '../../src/base/tensor.js';
import { interpret } from '../../src/interp/interpret.js';

export type DimLike = string | number | Dim;

export function dim(d: DimLike): Dim {
  if (typeof d === 'number') return dimConst(d);
  if (typeof d === 'string') {
    const p = parseDim(d);
    if (p === undefined) throw new Error(`bad dim text '${d}'`);
    return p;
  }
  return d;
}

/** `ty('f32', ['B', 'T', 768])` */
export function ty(dtype: DType, shape: readonly DimLike[]): TensorType {
  return { dtype, shape: shape.map(dim) };
}

/** The catalog rule's answer for an op: a type or an OpError. */
export function inferType(op: string, operands: readonly TensorType[], attrs: Attrs = {}, declared?: TensorType): TensorType | OpError {
  const def = getOp(op);
  if (def === undefined) throw new Error(`no op '${op}' in the catalog`);
  return declared === undefined ? def.infer(operands, attrs) : def.infer(operands, attrs, declared);
}

export const testSpan: Span = { file: 'test.tfx', line: 1, col: 1, endLine: 1, endCol: 1 };

/** Not src/graph/rewrite.ts GraphBuilder (the passes' id-renumbering builder): this one infers types for tests. */
export class TestGraphBuilder {
  private readonly nodes: Node[] = [];
  private readonly outs: GraphOutput[] = [];

  constructor(
    readonly name = 'test',
    readonly dims: readonly string[] = [],
  ) {}

  typeOf(id: number): TensorType {
    const n = this.nodes[id];
    if (n === undefined) throw new Error(`no node %${id}`);
    return n.type;
  }

  /** Adds a node; `declared` is needed for input, weight and const. */
  op(op: string, operands: readonly number[] = [], attrs: Attrs = {}, declared?: TensorType): number {
    const t = inferType(op, operands.map((o) => this.typeOf(o)), attrs, declared);
    if ('code' in t) throw new Error(`${t.code}: ${t.message}`);
    const id = this.nodes.length;
    this.nodes.push(Object.freeze({ id, op, operands: [...operands], attrs, type: t, loc: { ...testSpan, line: id + 1 } }));
    return id;
  }

  input(name: string, dtype: DType, shape: readonly DimLike[]): number {
    return this.op('input', [], { name: { kind: 'str', value: name } }, ty(dtype, shape));
  }

  weight(name: string, dtype: DType, shape: readonly DimLike[]): number {
    return this.op('weight', [], { name: { kind: 'str', value: name } }, ty(dtype, shape));
  }

  const(value: number, dtype: DType = 'f32'): number {
    return this.op('const', [], { value: { kind: 'float', value } }, ty(dtype, []));
  }

  output(name: string, value: number): this {
    this.outs.push({ name, value, loc: testSpan });
    return this;
  }

  build(): Graph {
    return Object.freeze({ name: this.name, dims: [...this.dims], nodes: [...this.nodes], outputs: [...this.outs] });
  }
}

/**
 * Runs one op through the interpreter: each tensor becomes an input with its concrete shape, the
 * op's result is the output. Returns the result tensor.
 */
export function runOp(op: string, tensors: readonly Tensor64[], attrs: Attrs = {}): Tensor64 {
  const b = new TestGraphBuilder();
  const ids = tensors.map((t, i) => b.input(`x${i}`, t.dtype, t.shape));
  b.output('y', b.op(op, ids, attrs));
  const inputs = new Map(tensors.map((t, i) => [`x${i}`, t]));
  const y = interpret(b.build(), { inputs, weights: new Map() }).outputs.get('y');
  if (y === undefined) throw new Error('no output');
  return y;
}

/** A tensor from row-major values: `t('f32', [2, 2], [1, 2, 3, 4])`. */
export function t(dtype: DType, shape: readonly number[], values: readonly number[]): Tensor64 {
  return makeTensor(dtype, shape, values);
}
