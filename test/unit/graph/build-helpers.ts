// Hand-built graphs for the printer goldens and the verifier tests: built from objects, not
// from IR text, so the printer is tested against something the parser did not produce.
import { parseDim } from '../../../src/base/dim.js';
import type { Span } from '../../../src/diag/span.js';
import type { Attr, Graph, GraphOutput, Node, ScalarExpr } from '../../../src/graph/ir.js';
import type { DType, TensorType } from '../../../src/graph/types.js';

export function dim(text: string) {
  const d = parseDim(text);
  if (d === undefined) throw new Error(`bad dim ${text}`);
  return d;
}

export function ty(dtype: DType, ...shape: string[]): TensorType {
  return { dtype, shape: shape.map(dim) };
}

export function span(line: number, col: number, endCol = col, file = 'm.tfx'): Span {
  return { file, line, col, endLine: line, endCol };
}

/** Collects nodes with ids equal to positions. */
export class HandGraph {
  readonly nodes: Node[] = [];
  readonly outputs: GraphOutput[] = [];
  constructor(
    readonly name: string,
    readonly dims: string[],
  ) {}
  add(op: string, operands: number[], attrs: Record<string, Attr>, type: TensorType, loc: Span = span(this.nodes.length + 1, 3)): number {
    const id = this.nodes.length;
    this.nodes.push({ id, op, operands, attrs, type, loc });
    return id;
  }
  out(name: string, value: number, loc: Span = span(90 + this.outputs.length, 3)): void {
    this.outputs.push({ name, value, loc });
  }
  graph(): Graph {
    return { name: this.name, dims: this.dims, nodes: this.nodes, outputs: this.outputs };
  }
}

export const A = {
  str: (value: string): Attr => ({ kind: 'str', value }),
  float: (value: number): Attr => ({ kind: 'float', value }),
  int: (value: number): Attr => ({ kind: 'int', value }),
  bool: (value: boolean): Attr => ({ kind: 'bool', value }),
  ints: (...value: number[]): Attr => ({ kind: 'ints', value }),
  dtype: (value: DType): Attr => ({ kind: 'dtype', value }),
  dim: (text: string): Attr => ({ kind: 'dim', value: dim(text) }),
  dims: (...texts: string[]): Attr => ({ kind: 'dims', value: texts.map(dim) }),
  lambda: (params: string[], body: ScalarExpr): Attr => ({ kind: 'lambda', params, body }),
};

export const S = {
  idx: (axis: number): ScalarExpr => ({ kind: 'index', axis }),
  dim: (text: string): ScalarExpr => ({ kind: 'dim', dim: dim(text) }),
  c: (value: number, dtype: DType): ScalarExpr => ({ kind: 'const', value, dtype }),
  read: (operand: number, dtype: DType, ...indices: ScalarExpr[]): ScalarExpr => ({ kind: 'read', operand, indices, dtype }),
  ap: (op: string, dtype: DType, ...args: ScalarExpr[]): ScalarExpr => ({ kind: 'apply', op, args, dtype }),
};
