// The shape of one catalog entry. Every op is declared once (see catalog.ts); the checker,
// graph builder, IR printer/parser, verifier, interpreter, cost report and docs all read it.
import type { Tensor64 } from '../base/tensor.js';
import type { Dim } from '../base/dim.js';
import type { DiagCode } from '../diag/codes.js';
import type { Attrs, AttrKind, Node } from '../graph/ir.js';
import type { DType, TensorType } from '../graph/types.js';

export type OpFamily =
  | 'source' // inputs, weights, constants, arange, grid
  | 'elementwise' // per-element with numpy broadcasting
  | 'reduce'
  | 'matmul'
  | 'movement' // reshape, permute, slice, concat, gather
  | 'norm' // softmax, layernorm, rmsnorm: row-wise
  | 'fused'; // made by fusion passes only

/** A user error found by a shape/dtype rule; the builder attaches the location. */
export interface OpError {
  readonly code: DiagCode;
  readonly message: string;
}

export function isOpError(x: TensorType | OpError): x is OpError {
  return 'code' in x;
}

/** What an interpreter rule gets besides its operands: the node (attrs, result type) and dim values. */
export interface InterpContext {
  readonly node: Node;
  readonly dims: ReadonlyMap<string, number>;
  /** The result shape with dims bound. */
  readonly shape: readonly number[];
  /** For `input` and `weight` nodes: the fed tensor under a name (already checked by the caller). */
  readonly feed?: (op: 'input' | 'weight', name: string) => Tensor64 | undefined;
  /** For an op with `resultOf`: the producer node whose operands the rule was given. */
  readonly producer?: Node;
}

/** What a typed per-element function may depend on: operand and result dtypes and the node's attrs. */
export interface ScalarTypes {
  readonly operand: DType; // dtype of the first operand
  readonly result: DType;
  readonly attrs: Attrs;
}

/** The math functions every target prints (src/kernel/ir/ir.ts MathFn is this list). */
export type ScalarMathFn = 'exp' | 'log' | 'sqrt' | 'rsqrt' | 'tanh' | 'erf' | 'sin' | 'cos' | 'abs' | 'floor' | 'round' | 'pow' | 'max' | 'min';
/** Binary operators every target prints; `rem` truncates (C `%`), comparisons give bool. */
export type ScalarBinaryOp = 'add' | 'sub' | 'mul' | 'div' | 'rem' | 'lt' | 'le' | 'gt' | 'ge' | 'eq' | 'ne' | 'and' | 'or';

/**
 * Builds one target's per-element expressions of type E. The kernel lowering implements it over
 * kernel IR (src/kernel/lower/scalar.ts), so an op's lowering is written here, once, without the
 * catalog importing the kernel layer.
 */
export interface ScalarBuilder<E> {
  /** A literal of `like`'s type. */
  lit(like: E, value: number): E;
  unary(op: 'neg' | 'not', x: E): E;
  binary(op: ScalarBinaryOp, a: E, b: E): E;
  /** A math function, in the type of its first argument. */
  call(fn: ScalarMathFn, args: readonly E[]): E;
  select(cond: E, ifTrue: E, ifFalse: E): E;
  /** `x` converted to the op's result type (cast). */
  toResult(x: E): E;
  /** Whether `x` is an integer (i32) value. */
  isInt(x: E): boolean;
}

/** An elementwise op's per-element lowering: its operands (already converted by its OperandTyping) to its value. */
export type ScalarLowering = <E>(b: ScalarBuilder<E>, args: readonly E[], attrs: Attrs) => E;

/**
 * How an elementwise op's operands are converted before its lowering: 'result' (each to the
 * result type: arithmetic, where an i32 index meets a float the float wins), 'compare' (both to
 * one type: comparisons), 'select' (bool, then the result type twice: where), 'own' (unchanged: cast).
 */
export type OperandTyping = 'result' | 'compare' | 'select' | 'own';

export interface OpDef {
  readonly name: string; // lower snake case, also the IR text spelling
  readonly family: OpFamily;
  readonly arity: number | 'variadic';
  /** Required attributes and their kinds; the IR parser and verifier check them. */
  readonly attrs: Readonly<Record<string, AttrKind>>;
  /** Attributes that may be absent (fused_attention's `mask` and `score`); checked when present. */
  readonly optionalAttrs?: Readonly<Record<string, AttrKind>>;
  readonly doc: string; // one line, for docs/ops.md
  /**
   * Result type from operand types and attributes; an OpError for user mistakes. `declared` is
   * the result type written in the source or IR text; `input`, `weight` and `const` need it.
   */
  infer(operands: readonly TensorType[], attrs: Attrs, declared?: TensorType): TensorType | OpError;
  /** The float64 reference semantics (naive on purpose: it shares nothing with the kernels). */
  interp(operands: readonly Tensor64[], ctx: InterpContext): Tensor64;
  /** Floating-point operations as a formula of the dims. */
  flops(operands: readonly TensorType[], result: TensorType, attrs: Attrs): Dim;
  /** For elementwise ops: the per-element function (also used inside grid lambdas). */
  readonly scalar?: (...xs: number[]) => number;
  /**
   * For elementwise ops: the per-element function with dtypes known (i32 `div` truncates, i32
   * `add` wraps, `cast` converts to the result dtype, `gelu` reads `approx`). The interpreter and
   * grid lambdas use this; `scalar` is the float semantics.
   */
  readonly scalarTyped?: (types: ScalarTypes) => (...xs: number[]) => number;
  /** For elementwise ops: the kernel lowering of one element (every kernel and lambda uses it). */
  readonly lower?: ScalarLowering;
  /** For elementwise ops: how operands are converted before `lower`. */
  readonly typing?: OperandTyping;
  /** For elementwise ops a user calls by name (`exp(x)`, `pow(a, b)`): the builtin's one-line doc (src/ops/builtins.ts derives the builtin). */
  readonly builtin?: string;
  /**
   * A second result of another op, as a node of its own (the graph IR is single-result SSA):
   * operand 0 must be made by the op named here (the verifier checks it), the producer's kernel
   * writes this node's buffer too (no kernel of its own), and the interpreter gives `interp` the
   * producer's operands, with the producer as `ctx.producer`. `fused_attention_lse %attn`.
   */
  readonly resultOf?: string;
  /** How the op reaches a kernel: 'unfused' has a plain lowering; 'fused-only' appears only after fusion. */
  readonly lowering: 'unfused' | 'fused-only' | 'none';
}

export function defineOp(def: OpDef): OpDef {
  return Object.freeze(def);
}
