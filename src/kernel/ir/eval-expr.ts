// A host-side evaluator of kernel IR expressions and `let` statements, with the targets' integer
// semantics (u32 wraps, i32 truncating division, f32 rounding). Used to run a kernel's own
// uniform bookkeeping on the CPU (the fused attention tile counter), never the kernels themselves.
import { type Expr, type Stmt, assertNever } from './ir.js';

export interface EvalEnv {
  readonly vars: Map<string, number>;
  readonly uniforms: ReadonlyMap<string, number>;
  /** workgroup_id per axis (the only builtin uniform code reads). */
  readonly workgroupId: readonly [number, number, number];
  /** Read-only global buffers by slot (`load`); an index past the end reads the last element. */
  readonly buffers?: ReadonlyMap<number, ArrayLike<number>>;
}

function wrap(type: string, x: number): number {
  switch (type) {
    case 'u32':
      return x >>> 0;
    case 'i32':
      return x | 0;
    case 'f32':
      return Math.fround(x);
    case 'bool':
      return x !== 0 ? 1 : 0;
    default:
      return x;
  }
}

export function evalExpr(e: Expr, env: EvalEnv): number {
  switch (e.kind) {
    case 'lit':
      return e.value;
    case 'var': {
      const x = env.vars.get(e.name);
      if (x === undefined) throw new Error(`internal: eval reads unbound ${e.name}`);
      return x;
    }
    case 'uniform': {
      const x = env.uniforms.get(e.dim);
      if (x === undefined) throw new Error(`internal: eval reads unbound dim ${e.dim}`);
      return x;
    }
    case 'builtin':
      if (e.id === 'workgroup_id') return env.workgroupId[e.axis];
      throw new Error(`internal: eval cannot read builtin ${e.id}`);
    case 'unary': {
      const a = evalExpr(e.arg, env);
      return e.op === 'not' ? (a !== 0 ? 0 : 1) : wrap(e.type, -a);
    }
    case 'binary': {
      const a = evalExpr(e.a, env);
      const b = evalExpr(e.b, env);
      switch (e.op) {
        case 'add':
          return wrap(e.type, a + b);
        case 'sub':
          return wrap(e.type, a - b);
        case 'mul':
          return e.type === 'u32' || e.type === 'i32' ? wrap(e.type, Number(BigInt.asIntN(64, BigInt(a) * BigInt(b)))) : wrap(e.type, a * b);
        case 'div':
          return e.type === 'f32' || e.type === 'f16' ? wrap(e.type, a / b) : b === 0 ? 0 : wrap(e.type, Math.trunc(a / b));
        case 'rem':
          return e.type === 'f32' || e.type === 'f16' ? wrap(e.type, a % b) : b === 0 ? 0 : wrap(e.type, a % b);
        case 'lt':
          return a < b ? 1 : 0;
        case 'le':
          return a <= b ? 1 : 0;
        case 'gt':
          return a > b ? 1 : 0;
        case 'ge':
          return a >= b ? 1 : 0;
        case 'eq':
          return a === b ? 1 : 0;
        case 'ne':
          return a !== b ? 1 : 0;
        case 'and':
          return a !== 0 && b !== 0 ? 1 : 0;
        case 'or':
          return a !== 0 || b !== 0 ? 1 : 0;
      }
      throw new Error('internal: eval: unknown binary op');
    }
    case 'call': {
      const xs = e.args.map((a) => evalExpr(a, env));
      const [a = NaN, b = NaN] = xs;
      switch (e.fn) {
        case 'max':
          return Math.max(a, b);
        case 'min':
          return Math.min(a, b);
        case 'abs':
          return Math.abs(a);
        case 'floor':
          return Math.floor(a);
        default:
          throw new Error(`internal: eval has no ${e.fn}`);
      }
    }
    case 'select':
      return evalExpr(e.cond, env) !== 0 ? evalExpr(e.ifTrue, env) : evalExpr(e.ifFalse, env);
    case 'cast': {
      const a = evalExpr(e.arg, env);
      if (e.to === 'i32' || e.to === 'u32') return wrap(e.to, Math.trunc(a));
      return wrap(e.to, a);
    }
    case 'load': {
      const buf = env.buffers?.get(e.slot);
      if (buf === undefined || buf.length === 0) throw new Error(`internal: eval has no values for slot ${e.slot}`);
      const i = Math.min(evalExpr(e.index, env), buf.length - 1); // clamped, as WebGPU robustness may
      return wrap(e.type, buf[i] ?? NaN);
    }
    case 'array_load':
    case 'subgroup':
      throw new Error(`internal: eval cannot run ${e.kind} on the host`);
    default:
      return assertNever(e);
  }
}

/** Runs `let`/`var` declarations (and comments) in order, binding their values in `env.vars`. */
export function evalLets(stmts: readonly Stmt[], env: EvalEnv): void {
  for (const s of stmts) {
    if (s.kind === 'let' || s.kind === 'var') env.vars.set(s.name, wrap(s.type, evalExpr(s.init, env)));
    else if (s.kind !== 'comment') throw new Error(`internal: eval runs lets only, got ${s.kind}`);
  }
}
