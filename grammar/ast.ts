// The .tfx abstract syntax tree: what cst-to-ast.ts builds and what fmt, the checker and
// the graph builder read. Every node carries its source span.
import type { Span } from '../src/diag/span.js';

export type DTypeName = 'f32' | 'f16' | 'bf16' | 'i32' | 'i8' | 'bool';

export interface Ident {
  readonly name: string;
  readonly loc: Span;
}

export type BinaryOp = '+' | '-' | '*' | '/' | '//' | '%' | '@' | '==' | '!=' | '<' | '<=' | '>' | '>=' | '&&' | '||';
export type UnaryOp = '-' | '!';

export type Expr =
  | { readonly kind: 'num'; readonly value: number; readonly isInt: boolean; readonly text: string; readonly loc: Span }
  | { readonly kind: 'str'; readonly value: string; readonly loc: Span }
  | { readonly kind: 'name'; readonly name: string; readonly loc: Span }
  | { readonly kind: 'unary'; readonly op: UnaryOp; readonly operand: Expr; readonly loc: Span }
  | { readonly kind: 'binary'; readonly op: BinaryOp; readonly left: Expr; readonly right: Expr; readonly loc: Span }
  | { readonly kind: 'call'; readonly callee: Ident; readonly args: readonly Arg[]; readonly loc: Span }
  /** `x |> f(a)` is `f(x, a)`; kept as its own node so that fmt prints it back as written. */
  | { readonly kind: 'pipe'; readonly value: Expr; readonly call: CallExpr; readonly loc: Span }
  | { readonly kind: 'index'; readonly target: Expr; readonly indices: readonly Expr[]; readonly loc: Span }
  | { readonly kind: 'list'; readonly items: readonly Expr[]; readonly loc: Span }
  /** `grid[T, S](q, k) => k <= q`: a tensor whose elements are an expression of their indices. */
  | {
      readonly kind: 'grid';
      readonly shape: readonly Expr[];
      readonly params: readonly Ident[];
      readonly body: Expr;
      readonly loc: Span;
    };

export type CallExpr = Extract<Expr, { kind: 'call' }>;

export interface Arg {
  readonly name?: Ident; // named argument `axis=-1`
  readonly value: Expr;
  readonly loc: Span;
}

/** `f32[B, T, d]`; `f32` alone (shape undefined) is a scalar `f32[]`. */
export interface TensorTypeExpr {
  readonly kind: 'tensor';
  readonly dtype: DTypeName;
  readonly shape: readonly Expr[];
  readonly loc: Span;
}

/** `index`: a compile-time integer parameter (a layer number). */
export interface IndexTypeExpr {
  readonly kind: 'index';
  readonly loc: Span;
}

export type TypeExpr = TensorTypeExpr | IndexTypeExpr;

/** `[l in 0..layers]` after a weight/input/output name: a family of tensors indexed by l. */
export interface FamilyRange {
  readonly index: Ident;
  readonly from: Expr;
  readonly to: Expr; // exclusive
  readonly loc: Span;
}

export interface ConfigEntry {
  readonly name: Ident;
  /** The default value: used when no checkpoint key is given or present. */
  readonly value: Expr;
  /** `from "n_embd", "hidden_size"`: config.json keys, the first present wins (--checkpoint). */
  readonly keys?: readonly StringLit[];
  readonly loc: Span;
}

/** A string literal with its location (config keys). */
export interface StringLit {
  readonly value: string;
  readonly loc: Span;
}

export type Item =
  | { readonly kind: 'config'; readonly entries: readonly ConfigEntry[]; readonly loc: Span }
  | { readonly kind: 'dims'; readonly names: readonly Ident[]; readonly loc: Span }
  /** `limit T + P <= ctx`: `bound` is the comparison (`<=` or `<`, dims on the left, constants on the right). */
  | { readonly kind: 'limit'; readonly bound: Expr; readonly loc: Span }
  | {
      readonly kind: 'weight' | 'input' | 'output';
      readonly name: Ident;
      readonly family?: FamilyRange;
      readonly type: TensorTypeExpr;
      /** The tensor's name in safetensors files, with `{l}` placeholders; defaults to the declared name. */
      readonly key?: { readonly value: string; readonly loc: Span };
      readonly loc: Span;
    }
  | {
      readonly kind: 'fn';
      readonly name: Ident;
      readonly generics: readonly Ident[]; // `fn attn[N, M](...)`: dims bound per call
      readonly params: readonly Param[];
      readonly results: readonly TensorTypeExpr[];
      readonly body: readonly Stmt[];
      readonly loc: Span;
    }
  | { readonly kind: 'model'; readonly name: Ident; readonly body: readonly Stmt[]; readonly loc: Span };

export type TensorDeclItem = Extract<Item, { kind: 'weight' | 'input' | 'output' }>;
export type FnItem = Extract<Item, { kind: 'fn' }>;

export interface Param {
  readonly name: Ident;
  readonly type: TypeExpr;
  readonly loc: Span;
}

export interface AssignTarget {
  readonly name: Ident;
  readonly index?: Expr; // `present_k[l] = ...` assigns one member of an output family
  readonly loc: Span;
}

export type Stmt =
  | { readonly kind: 'assign'; readonly targets: readonly AssignTarget[]; readonly value: Expr; readonly loc: Span }
  | {
      readonly kind: 'for';
      readonly index: Ident;
      readonly from: Expr;
      readonly to: Expr; // exclusive
      readonly body: readonly Stmt[];
      readonly loc: Span;
    }
  | { readonly kind: 'return'; readonly values: readonly Expr[]; readonly loc: Span };

export interface Comment {
  readonly text: string; // including the leading '#'
  readonly loc: Span;
}

export interface Module {
  readonly file: string;
  readonly items: readonly Item[];
  /** Comments in source order; fmt re-attaches them by line. Not part of AST equality. */
  readonly comments: readonly Comment[];
}
