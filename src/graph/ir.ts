// The graph IR: an SSA list of nodes, each an op from the catalog with operands, attributes,
// a result type and a source location. Functions are inlined and `for` loops unrolled when the
// graph is built, so a graph is a flat DAG in topological (definition) order.
import type { Span } from '../diag/span.js';
import type { Dim } from '../base/dim.js';
import type { DType, TensorType } from './types.js';

/**
 * A scalar expression over the indices of a `grid` node (FlexAttention-style masks and score
 * modifiers). `read` looks up an element of one of the grid node's operands.
 */
export type ScalarExpr =
  | { readonly kind: 'index'; readonly axis: number } // the grid's axis-th index
  | { readonly kind: 'dim'; readonly dim: Dim } // a dimension value, e.g. S - T
  | { readonly kind: 'const'; readonly value: number; readonly dtype: DType }
  | { readonly kind: 'read'; readonly operand: number; readonly indices: readonly ScalarExpr[]; readonly dtype: DType }
  // `attrs`: the op's attributes other than dtype-valued ones (those follow from `dtype`), e.g.
  // gelu's approx; absent when there are none.
  | { readonly kind: 'apply'; readonly op: string; readonly args: readonly ScalarExpr[]; readonly dtype: DType; readonly attrs?: Attrs };

export type Attr =
  | { readonly kind: 'int'; readonly value: number }
  | { readonly kind: 'float'; readonly value: number } // may be +-Infinity
  | { readonly kind: 'str'; readonly value: string }
  | { readonly kind: 'bool'; readonly value: boolean }
  | { readonly kind: 'ints'; readonly value: readonly number[] }
  | { readonly kind: 'dtype'; readonly value: DType }
  | { readonly kind: 'dim'; readonly value: Dim }
  | { readonly kind: 'dims'; readonly value: readonly Dim[] }
  | { readonly kind: 'lambda'; readonly params: readonly string[]; readonly body: ScalarExpr };

export type AttrKind = Attr['kind'];
export type Attrs = Readonly<Record<string, Attr>>;

/** One SSA value. `id` is its index in `Graph.nodes`; operands refer to earlier ids only. */
export interface Node {
  readonly id: number;
  readonly op: string; // a catalog op name
  readonly operands: readonly number[];
  readonly attrs: Attrs;
  readonly type: TensorType;
  readonly loc: Span;
  /** For nodes made by a rewrite: the spans of the nodes they replaced. */
  readonly from?: readonly Span[];
  /**
   * Where the node came from in the source, for kernel names: the innermost user function (or
   * the model) and the enclosing layer index, e.g. `attention_l0`. Set by the graph builder,
   * kept by rewrites; not part of the IR text (a parsed .ir file has none).
   */
  readonly scope?: string;
}

export interface GraphOutput {
  readonly name: string; // the safetensors name (family members expanded: `present.0.key`)
  readonly value: number;
  readonly loc: Span;
}

export interface Graph {
  readonly name: string;
  /** Symbolic dims bound at run time, in declaration order. */
  readonly dims: readonly string[];
  readonly nodes: readonly Node[];
  readonly outputs: readonly GraphOutput[];
}

// Typed attribute accessors: a missing or mistyped attribute is a compiler bug, not a user error.
function attrOf<K extends AttrKind>(node: Node, key: string, kind: K): Extract<Attr, { kind: K }> {
  const a = node.attrs[key];
  if (a === undefined || a.kind !== kind) {
    throw new Error(`internal: node %${node.id} (${node.op}) lacks ${kind} attribute '${key}'`);
  }
  return a as Extract<Attr, { kind: K }>;
}
export const intAttr = (n: Node, k: string): number => attrOf(n, k, 'int').value;
export const floatAttr = (n: Node, k: string): number => attrOf(n, k, 'float').value;
export const strAttr = (n: Node, k: string): string => attrOf(n, k, 'str').value;
export const boolAttr = (n: Node, k: string): boolean => attrOf(n, k, 'bool').value;
export const intsAttr = (n: Node, k: string): readonly number[] => attrOf(n, k, 'ints').value;
export const dtypeAttr = (n: Node, k: string): DType => attrOf(n, k, 'dtype').value;
export const dimAttr = (n: Node, k: string): Dim => attrOf(n, k, 'dim').value;
export const dimsAttr = (n: Node, k: string): readonly Dim[] => attrOf(n, k, 'dims').value;
export const lambdaAttr = (n: Node, k: string): Extract<Attr, { kind: 'lambda' }> => attrOf(n, k, 'lambda');

export const attr = {
  int: (value: number): Attr => ({ kind: 'int', value }),
  float: (value: number): Attr => ({ kind: 'float', value }),
  str: (value: string): Attr => ({ kind: 'str', value }),
  bool: (value: boolean): Attr => ({ kind: 'bool', value }),
  ints: (value: readonly number[]): Attr => ({ kind: 'ints', value }),
  dtype: (value: DType): Attr => ({ kind: 'dtype', value }),
  dim: (value: Dim): Attr => ({ kind: 'dim', value }),
  dims: (value: readonly Dim[]): Attr => ({ kind: 'dims', value }),
};
