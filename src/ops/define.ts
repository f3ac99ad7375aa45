// The shape of one catalog entry. Every op is declared once (see catalog.ts); the checker,
// graph builder, IR printer/parser, verifier, interpreter, cost report and docs all read it.
import type { Tensor64 } from '../base/tensor.js';
import type { Dim } from '../base/dim.js';
import type { Span } from '../diag/span.js';
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

/**
 * Builds derivative expressions of type E: graph nodes (src/autodiff/ builds them over the graph
 * builder) or lambda expressions (src/ops/lambda-grad.ts), so an elementwise op's derivative is
 * written once, in `grad`, for both. `op` infers the result type (broadcasting for nodes).
 */
export interface DiffBuilder<E> {
  /** `name(...args)`: an elementwise op (its attributes, e.g. gelu's approx, in `attrs`). */
  op(name: string, ...args: E[]): E;
  opWith(name: string, attrs: Attrs, ...args: E[]): E;
  /** A float literal of `like`'s dtype (a scalar: broadcasts). */
  lit(like: E, value: number): E;
  /** `x` converted to `dtype`. */
  cast(x: E, dtype: DType): E;
  dtype(x: E): DType;
}

/**
 * An elementwise op's vector-Jacobian product per element: given the arguments `x`, the result
 * `y` and the result's cotangent `g`, each argument's cotangent (undefined where none flows: a
 * bool condition). Broadcast arguments are summed back by the caller.
 */
export type ScalarVjp = <E>(b: DiffBuilder<E>, x: readonly E[], y: E, g: E, attrs: Attrs) => readonly (E | undefined)[];

/**
 * Builds backward graph nodes for a vjp rule (implemented by src/autodiff/ over the graph
 * builder; the catalog does not import it). Ids are values of the graph being built: the forward
 * values (a rule's `x` and `y`, which the backward then reads: saved activations) and new ones.
 */
export interface GradBuilder extends DiffBuilder<number> {
  /**
   * A node of catalog op `name`; its type comes from the op's `infer` (a failure is a bug), given
   * `declared` for ops typed by their declaration (a second result such as fused_attention_grad_k).
   */
  node(name: string, operands: readonly number[], attrs?: Attrs, declared?: TensorType): number;
  type(id: number): TensorType;
  /** A float scalar constant. */
  constant(value: number, dtype: DType): number;
  /** A dim's value as a float scalar (a constant, or a rank-0 grid of `dim(d)` when symbolic). */
  dimValue(d: Dim, dtype: DType): number;
  /** Sums a broadcast cotangent back to `shape` (the transpose of numpy broadcasting). */
  unbroadcast(id: number, shape: readonly Dim[]): number;
  /** `id` broadcast to `shape` (a grid reading it; the identity when the shapes are equal). */
  broadcastTo(id: number, shape: readonly Dim[]): number;
  /** Zeros of a type. */
  zeros(type: TensorType): number;
  /** The location backward nodes are attributed to (the forward node's). */
  readonly loc: Span;
}

/** What a vjp rule gets: the forward node, its operands' and result's ids, the result's cotangent. */
export interface VjpArgs {
  readonly node: Node;
  /** The operand values (ids in the graph being built). */
  readonly x: readonly number[];
  /** The forward result. */
  readonly y: number;
  /** The cotangent of the result (its type is the result's). */
  readonly dy: number;
  /** Which operands want a cotangent (float values on a path from a differentiated value). */
  readonly needs: readonly boolean[];
  /**
   * Cotangents of the node's second results (nodes of an op whose `resultOf` is this op, e.g.
   * fused_attention_lse), by op name, summed over such nodes; absent when none carries one.
   * `dy` is then zeros if the node's own result has no cotangent.
   */
  readonly results?: ReadonlyMap<string, number>;
}

/**
 * A vector-Jacobian product: each operand's cotangent (same type as the operand), or undefined
 * where `needs` is false. Built with catalog ops only, so the backward graph runs on every target.
 */
export type VjpRule = (g: GradBuilder, a: VjpArgs) => readonly (number | undefined)[];

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
   * `grad` gives its cotangent to the producer's vjp (`VjpArgs.results`), not to a rule of its own.
   */
  readonly resultOf?: string;
  /**
   * Reverse-mode rule (src/autodiff/grad.ts calls it): operands' cotangents from the result's.
   * Every op with operands has this or `noGrad` (test/unit/autodiff/op-vjp.test.ts enumerates).
   */
  readonly vjp?: VjpRule;
  /** Why the op has no `vjp` (a bool result, only made by fusion...): the error `grad` reports names it. */
  readonly noGrad?: string;
  /** For elementwise ops: the per-element vjp, also used to differentiate grid lambdas symbolically. */
  readonly scalarVjp?: ScalarVjp;
  /** How the op reaches a kernel: 'unfused' has a plain lowering; 'fused-only' appears only after fusion. */
  readonly lowering: 'unfused' | 'fused-only' | 'none';
}

export function defineOp(def: OpDef): OpDef {
  return Object.freeze(def);
}
