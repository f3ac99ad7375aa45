// The one C-style printer both backends share: statement and expression walking, operand
// parenthesization, flat else-if chains, comments, literal range checks, local naming and the
// kernel header. A backend (codegen/wgsl/print.ts, codegen/cuda/print.ts) subclasses it and
// overrides only spellings: types, declarations, builtins, barriers, literals, buffer access,
// subgroup ops, and its own kernel signature and prelude in `print`.
import { NameScope } from '../../src/base/names.js';
import type { Writer } from './writer.js';
import { formatF32 } from './float.js';
import {
  type BinaryOp,
  type BuiltinId,
  type Expr,
  type Kernel,
  type KernelSchedule,
  type MathFn,
  type MatrixStmt,
  type ScalarType,
  type Stmt,
  type SubgroupOp,
  type UnaryOp,
  assertNever,
  exprType,
  forEachExpr,
} from '../../src/kernel/ir/ir.js';
import { printSize } from '../../src/kernel/plan/to-size.js';

export function describeSchedule(s: KernelSchedule): string {
  switch (s.kind) {
    case 'map':
      return `map, ${s.workgroupSize} threads per workgroup, one element per thread`;
    case 'row':
      return `row, ${s.workgroupSize} threads per row, ${s.useSubgroups ? 'subgroup' : 'shared-memory tree'} reductions`;
    case 'tiled_matmul':
      if (s.kLanes === true) return `tiled_matmul, tile ${s.tileRows}x${s.tileCols}, one subgroup, K split across lanes in steps of ${s.tileK}, ${s.aVector ?? 1}/${s.bVector ?? 1}-element loads of A/B`;
      if (s.laneBroadcast === true) return `tiled_matmul, tile ${s.tileRows}x${s.tileCols}x${s.tileK}, one subgroup, A rows broadcast from lanes, ${s.threadCols} columns per lane, ${s.aVector ?? 1}/${s.bVector ?? 1}-element loads of A/B`;
      return `tiled_matmul, tile ${s.tileRows}x${s.tileCols}x${s.tileK}, ${s.threadRows}x${s.threadCols} outputs per thread`;
    case 'flash_attention':
      if (s.laneBroadcast === true) return `flash_attention, ${s.tileRows} rows x ${s.tileCols} keys per tile, one subgroup of ${s.lanes} lanes, rows broadcast from lanes`;
      return `flash_attention, ${s.tileRows} query rows x ${s.tileCols} keys per tile, ${s.lanes} lanes per row, ${s.useSubgroups ? 'subgroup' : 'workgroup-memory'} row reductions${s.splits > 1 ? `, ${s.splits} cache partitions` : ''}${s.mma !== undefined ? `, m16n8k16 ${s.mma} mma, f32 accumulators` : ''}`;
    case 'cross_entropy':
      return `cross_entropy rows, chunk ${s.chunk + 1} of ${s.chunks} (rows ${s.firstRow} to ${s.firstRow + s.rows - 1} of ${s.total}, chunkRows ${s.chunkRows}), ${s.workgroupSize} threads per row, ${s.useSubgroups ? 'subgroup' : 'shared-memory tree'} reductions${s.gradient ? ', gradient written over the logits tile' : ''}`;
    case 'mma_matmul':
      return `mma_matmul, tile ${s.tileRows}x${s.tileCols}x${s.tileK}, ${s.warpRows}x${s.warpCols} warps of m16n8k16 ${s.input} mma, f32 accumulators, ${s.stages}-stage async copies`;
    default:
      return assertNever(s);
  }
}

/** Builtin ids the kernel body reads. */
export function usedBuiltins(k: Kernel): Set<BuiltinId> {
  const used = new Set<BuiltinId>();
  forEachExpr(k.body, (e) => {
    if (e.kind === 'builtin') used.add(e.id);
  });
  return used;
}

/** True when a float literal has no finite spelling in `type` (f32 overflow, or beyond f16's max). */
export function isInfLiteral(type: 'f32' | 'f16', value: number): boolean {
  return !Number.isFinite(Math.fround(value)) || (type === 'f16' && Math.abs(value) > 65504);
}

export abstract class CStylePrinter {
  protected readonly scope: NameScope;
  private readonly names = new Map<string, string>();
  protected readonly bufferNames: string[] = [];
  protected readonly dimNames = new Map<string, string>();

  constructor(
    protected readonly k: Kernel,
    reserved: ReadonlySet<string>,
  ) {
    this.scope = new NameScope(reserved);
  }

  // ---- spellings each backend supplies ----

  /** Header comment label for the thread group size (`workgroup`, `block`). */
  protected abstract readonly groupLabel: string;
  /** `let`/`var` declaration line (without the `;`). */
  protected abstract declare(kind: 'let' | 'var', type: ScalarType, name: string, init: string): string;
  /** Private array declaration (without the `;`); `elems` undefined means zero-initialized. */
  protected abstract declareArray(type: ScalarType, name: string, length: number, elems: readonly string[] | undefined): string;
  /** The loop variable's declaration in a `for` head (`var i: u32`, `unsigned int i`). */
  protected abstract loopVar(name: string): string;
  protected abstract readonly barrier: string;
  protected abstract builtin(id: BuiltinId, axis: number): string;
  protected abstract uniform(dim: string): string;
  protected abstract unaryOp(op: UnaryOp): string;
  /** Whether a unary form is an operator form that takes parentheses as an operand. */
  protected abstract readonly parenthesizeUnary: boolean;
  protected abstract binary(op: BinaryOp, a: string, b: string, operandType: ScalarType): string;
  /** Binary forms printed as calls need no parentheses. */
  protected binaryIsCall(_op: BinaryOp, _operandType: ScalarType): boolean {
    return false;
  }
  protected abstract call(fn: MathFn, args: readonly string[], type: ScalarType): string;
  protected abstract select(cond: Expr, ifTrue: Expr, ifFalse: Expr, nested: boolean): string;
  protected abstract cast(to: ScalarType, arg: Expr): string;
  protected abstract subgroupOp(op: SubgroupOp): string;
  /** `arg` read from subgroup lane `lane` (the 'shuffle' and 'broadcast' subgroup ops). */
  protected abstract subgroupShuffle(op: SubgroupOp, arg: Expr, lane: Expr): string;
  /** i32 literal text (negative values are parenthesized as operands by the caller). */
  protected abstract i32Literal(value: number): string;
  protected abstract readonly nanLiteral: string;
  protected abstract infLiteral(negative: boolean): string;
  /** f16 literal from the f32 spelling `s`. */
  protected abstract f16Literal(s: string): string;
  /** `load_vec`: one vector load bound to scalar lets. */
  protected abstract loadVec(w: Writer, s: Extract<Stmt, { kind: 'load_vec' }>): void;
  /** A matrix intrinsic statement (mma, async copies); targets without matrix units throw. */
  protected abstract matrixStmt(w: Writer, s: MatrixStmt): void;

  /** A scalar load of element `index` of a slot (WGSL reads i8 slots through helpers). */
  protected loadText(slot: number, index: string): string {
    return `${this.bufferNames[slot] ?? ''}[${index}]`;
  }

  /** A scalar store statement (without the `;`). */
  protected storeText(slot: number, index: string, value: string): string {
    return `${this.bufferNames[slot] ?? ''}[${index}] = ${value}`;
  }

  /** Comment text safe on one `//` line: control characters (C0, C1 with NEL U+0085, U+2028/9) become spaces. */
  protected commentText(s: string): string {
    return s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, ' ');
  }

  // ---- shared walking ----

  protected local(irName: string): string {
    let n = this.names.get(irName);
    if (n === undefined) {
      n = this.scope.claim(irName);
      this.names.set(irName, n);
    }
    return n;
  }

  protected header(w: Writer): void {
    const k = this.k;
    w.comment(this.commentText(`kernel ${k.name}: ${k.op}`));
    for (const loc of k.locs) w.comment(this.commentText(`from ${loc}`));
    w.comment(`schedule: ${describeSchedule(k.schedule)}`);
    w.comment(`${this.groupLabel}: ${k.workgroupSize.join('x')}, grid: [${k.grid.map(printSize).join(', ')}]`);
    w.comment(`bytes read: ${printSize(k.traffic.bytesRead)}`);
    w.comment(`bytes written: ${printSize(k.traffic.bytesWritten)}`);
    w.comment(`flops: ${printSize(k.traffic.flops)}`);
  }

  protected stmts(w: Writer, list: readonly Stmt[]): void {
    for (const s of list) this.stmt(w, s);
  }

  protected stmt(w: Writer, s: Stmt): void {
    switch (s.kind) {
      case 'let':
      case 'var': {
        const name = this.local(s.name);
        w.line(`${this.declare(s.kind, s.type, name, this.expr(s.init, false))};`);
        return;
      }
      case 'private_array': {
        const isZero = s.init.kind === 'lit' && s.init.value === 0 && !Object.is(s.init.value, -0);
        const elems = isZero ? undefined : new Array<string>(s.length).fill(this.expr(s.init, false));
        w.line(`${this.declareArray(s.type, this.local(s.name), s.length, elems)};`);
        return;
      }
      case 'assign':
        w.line(`${this.local(s.name)} = ${this.expr(s.value, false)};`);
        return;
      case 'store':
        w.line(`${this.storeText(s.slot, this.expr(s.index, false), this.expr(s.value, false))};`);
        return;
      case 'array_store':
        w.line(`${this.local(s.array)}[${this.expr(s.index, false)}] = ${this.expr(s.value, false)};`);
        return;
      case 'load_vec':
        this.loadVec(w, s);
        return;
      case 'for': {
        const i = this.local(s.var);
        const step = s.step.kind === 'lit' && s.step.value === 1 ? `${i}++` : `${i} += ${this.expr(s.step, false)}`;
        w.open(`for (${this.loopVar(i)} = ${this.expr(s.start, false)}; ${i} < ${this.expr(s.end, false)}; ${step})`);
        this.stmts(w, s.body);
        w.close();
        return;
      }
      case 'if': {
        w.open(`if (${this.expr(s.cond, false)})`);
        this.stmts(w, s.then);
        let rest = s.else;
        // else-if chains print flat.
        for (;;) {
          const [only] = rest;
          if (rest.length === 1 && only !== undefined && only.kind === 'if') {
            w.reopen(`else if (${this.expr(only.cond, false)})`);
            this.stmts(w, only.then);
            rest = only.else;
            continue;
          }
          break;
        }
        if (rest.length > 0) {
          w.reopen('else');
          this.stmts(w, rest);
        }
        w.close();
        return;
      }
      case 'barrier':
        w.line(this.barrier);
        return;
      case 'comment':
        w.comment(this.commentText(s.text));
        return;
      case 'mma':
      case 'mma_regs':
      case 'async_copy':
      case 'async_commit':
      case 'async_wait':
        this.matrixStmt(w, s);
        return;
      default:
        assertNever(s);
    }
  }

  /** `nested`: the expression is an operand of an operator, so operator forms get parentheses. */
  protected expr(e: Expr, nested: boolean): string {
    const wrap = (s: string): string => (nested ? `(${s})` : s);
    switch (e.kind) {
      case 'lit':
        return this.literal(e.type, e.value, nested);
      case 'var':
        return this.local(e.name);
      case 'builtin':
        return this.builtin(e.id, e.axis);
      case 'uniform':
        return this.uniform(e.dim);
      case 'load':
        return this.loadText(e.slot, this.expr(e.index, false));
      case 'array_load':
        return `${this.local(e.array)}[${this.expr(e.index, false)}]`;
      case 'unary': {
        const text = `${this.unaryOp(e.op)}${this.expr(e.arg, true)}`;
        return this.parenthesizeUnary ? wrap(text) : text;
      }
      case 'binary': {
        const t = exprType(e.a);
        const text = this.binary(e.op, this.expr(e.a, true), this.expr(e.b, true), t);
        return this.binaryIsCall(e.op, t) ? text : wrap(text);
      }
      case 'call':
        return this.call(e.fn, e.args.map((a) => this.expr(a, false)), e.type);
      case 'select':
        return this.select(e.cond, e.ifTrue, e.ifFalse, nested);
      case 'cast':
        return this.cast(e.to, e.arg);
      case 'subgroup':
        return e.lane === undefined ? `${this.subgroupOp(e.op)}(${this.expr(e.arg, false)})` : this.subgroupShuffle(e.op, e.arg, e.lane);
      default:
        return assertNever(e);
    }
  }

  protected literal(type: ScalarType, value: number, nested: boolean): string {
    const neg = (s: string): string => (nested ? `(${s})` : s);
    switch (type) {
      case 'bool':
        return value !== 0 ? 'true' : 'false';
      case 'u32':
        if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new Error(`internal: bad u32 literal ${value}`);
        return `${value}u`;
      case 'i32':
      case 'i8': {
        if (!Number.isInteger(value) || value < -0x80000000 || value > 0x7fffffff) throw new Error(`internal: bad i32 literal ${value}`);
        const s = this.i32Literal(value);
        return value < 0 ? neg(s) : s;
      }
      case 'f32':
      case 'f16': {
        let s: string;
        if (Number.isNaN(value)) s = this.nanLiteral;
        else if (isInfLiteral(type, value)) s = this.infLiteral(value < 0);
        else s = `${formatF32(value)}f`;
        if (type === 'f16') return this.f16Literal(s);
        return s.startsWith('-') ? neg(s) : s;
      }
      default:
        return assertNever(type);
    }
  }
}
