// What the checker's helpers (builtin-calls.ts, grid.ts, unify.ts) may ask of the model checker
// (build.ts `ModelChecker`): diagnostics, graph nodes, compile-time values and expressions. An
// interface here, so the helpers and build.ts do not import each other.
import type { Expr, FnItem, TensorTypeExpr } from '../../grammar/ast.js';
import type { Dim } from '../base/dim.js';
import type { DiagCode } from '../diag/codes.js';
import type { Diagnostic, Note } from '../diag/diagnostic.js';
import type { Span } from '../diag/span.js';
import type { Attrs } from '../graph/ir.js';
import type { DType, TensorType } from '../graph/types.js';
import type { ConfigResult } from './config.js';
import type { Value } from './values.js';

/** What a name means inside one function body (or the model block). */
export type LocalKind = 'local' | 'param' | 'index-param' | 'loop' | 'generic';

export interface Scope {
  readonly locals: Map<string, { value: Value; kind: LocalKind }>;
  /** The function being inlined, or undefined in the model block. */
  readonly fn: FnItem | undefined;
}

export interface Checker {
  readonly config: ConfigResult;
  /** Reports a diagnostic (a warning, say) once per code, place and message. */
  report(d: Diagnostic): void;
  /** Reports an error; returns the poison value the failed expression evaluates to. */
  error(code: DiagCode, loc: Span, message: string, notes?: readonly Note[]): Value;
  /** Adds a graph node after the catalog's shape and dtype rule accepts it (else reports, poison). */
  addNode(op: string, operands: readonly Value[], attrs: Attrs, loc: Span, declared?: TensorType): Value;
  scalarAsTensor(v: Value, dtype: DType, loc: Span, what: string): Value;
  defaultTensor(v: Value, loc: Span, what: string): Value;
  compileTimeInt(v: Value, loc: Span, what: string): number | undefined;
  toDim(v: Value, loc: Span): Dim | undefined;
  toSignedDim(v: Value, loc: Span): Dim | undefined;
  evalType(t: TensorTypeExpr, sc: Scope): TensorType | undefined;
  expr(e: Expr, sc: Scope): Value;
  lookup(name: string, loc: Span, sc: Scope): Value;
}
