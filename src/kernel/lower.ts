// The plain, unfused lowering: graph IR -> kernel IR, one kernel per op (the `--no-fuse`
// baseline). Tile sizes and thread counts come from a Schedule (schedule.ts); traffic formulas
// from traffic.ts. Reshape is a view (no kernel); scalar constants used only by elementwise ops
// and grid bodies are folded into their consumers as literals, otherwise filled by a tiny kernel.
import { type Dim, dimConstValue, dimEquals, dimConst, dimMul } from '../check/dim.js';
import { formatSpan } from '../diag/span.js';
import {
  type Attrs,
  type Graph,
  type Node,
  type ScalarExpr,
  boolAttr,
  dimAttr,
  floatAttr,
  intAttr,
  intsAttr,
  lambdaAttr,
} from '../graph/ir.js';
import type { DType } from '../graph/types.js';
import { computeType, storageBytes, storageType } from './storage.js';
import { getOp } from '../ops/catalog.js';
import { NameScope, kernelNameReserved } from '../../codegen/common/names.js';
import {
  type Expr,
  type GlobalBuffer,
  type Kernel,
  type KernelProgram,
  type KernelSchedule,
  type KernelTemp,
  type MatrixInput,
  type MmaBLayout,
  type ScalarType,
  type SharedArray,
  type Stmt,
  type Traffic,
  add,
  and,
  arrayLoad,
  assertNever,
  bin,
  builtin,
  call,
  cast,
  div,
  exprType,
  forEachExpr,
  lit,
  load,
  lt,
  mul,
  rem,
  select,
  sub,
  subgroup,
  u32,
  uniform,
  unary,
  v,
} from './ir.js';
import { KernelBuilder } from './builder.js';
import type { SizeExpr, StepCondition } from './plan.js';
import { type Schedule, type TargetLimits, chooseSchedule, scheduleShapeKey } from './schedule.js';
import { dimToSize, sCeilDiv, sConst, sMinConst, sMul, shapeElements } from './to-size.js';
import { bytesOf, mapTraffic } from './traffic.js';
import { lowerFusedAttention } from './lower-attention.js';
import { type FusedHost, epilogueReadBytes, fusedMapTraffic, translateLambda, unravelFlat } from './lower-fused.js';
import { elementOffset, unravel } from './lower-view.js';
import { normPrologueOf } from '../ops/fused.js';
import { normFold } from './lower-norm-prologue.js';
import { emitMmaMatmul, unitStrideAxis } from './lower-mma.js';

export function lowerToKernels(g: Graph, target: TargetLimits, schedule: Schedule = chooseSchedule(target)): KernelProgram {
  return new Lowering(g, schedule, target).run();
}

// ---------------------------------------------------------------------------------------------

/** A dim polynomial as a u32 expression over uniforms; negative terms are subtracted. */
export function dimExpr(d: Dim): Expr {
  let pos: Expr = u32(0);
  let neg: Expr = u32(0);
  for (const t of d.terms) {
    let p: Expr = u32(Math.abs(t.coef));
    for (const name of t.vars) p = mul(p, uniform(name));
    if (t.coef > 0) pos = add(pos, p);
    else neg = add(neg, p);
  }
  return sub(pos, neg);
}

const productExpr = (dims: readonly Dim[]): Expr => dims.reduce<Expr>((acc, d) => mul(acc, dimExpr(d)), u32(1));

/** Row-major strides (as u32 expressions) of a shape. */
function strides(shape: readonly Dim[]): Expr[] {
  const out: Expr[] = new Array<Expr>(shape.length);
  let s: Expr = u32(1);
  for (let k = shape.length - 1; k >= 0; k--) {
    out[k] = s;
    s = mul(s, dimExpr(shape[k] ?? dimConst(1)));
  }
  return out;
}

const isOne = (d: Dim): boolean => dimConstValue(d) === 1;

function zeroOf(t: ScalarType): Expr {
  return t === 'bool' ? lit('bool', 0) : lit(t, 0);
}

// ---- per-element semantics of the catalog's elementwise ops (target-neutral expressions) ----

export type ElementwiseOp =
  | 'neg' | 'exp' | 'log' | 'sqrt' | 'rsqrt' | 'tanh' | 'erf' | 'sin' | 'cos' | 'abs' | 'relu' | 'silu' | 'sigmoid' | 'not'
  | 'gelu' | 'cast'
  | 'add' | 'sub' | 'mul' | 'div' | 'mod' | 'pow' | 'max' | 'min'
  | 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge' | 'and' | 'or'
  | 'where';

interface ScalarCtx {
  readonly result: ScalarType;
  readonly attrs: Attrs;
}
type ScalarLower = (args: readonly Expr[], ctx: ScalarCtx) => Expr;

const arg = (args: readonly Expr[], i: number): Expr => {
  const a = args[i];
  if (a === undefined) throw new Error(`internal: missing operand ${i}`);
  return a;
};
const fl = (e: Expr, value: number): Expr => lit(exprType(e), value);
const sigmoidOf = (x: Expr): Expr => bin('div', fl(x, 1), bin('add', fl(x, 1), call('exp', [unary('neg', x)], exprType(x))));
const math1 = (fn: 'exp' | 'log' | 'sqrt' | 'rsqrt' | 'tanh' | 'erf' | 'sin' | 'cos' | 'abs'): ScalarLower => (a) =>
  call(fn, [arg(a, 0)], exprType(arg(a, 0)));
const binary = (op: 'add' | 'sub' | 'mul' | 'div' | 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge' | 'and' | 'or'): ScalarLower => (a) =>
  bin(op, arg(a, 0), arg(a, 1));

/** One entry per catalog elementwise op: a missing op is a compile error here. */
export const scalarLowering: Record<ElementwiseOp, ScalarLower> = {
  neg: (a) => unary('neg', arg(a, 0)),
  exp: math1('exp'),
  log: math1('log'),
  sqrt: math1('sqrt'),
  rsqrt: math1('rsqrt'),
  tanh: math1('tanh'),
  erf: math1('erf'),
  sin: math1('sin'),
  cos: math1('cos'),
  abs: math1('abs'),
  relu: (a) => call('max', [arg(a, 0), fl(arg(a, 0), 0)], exprType(arg(a, 0))),
  sigmoid: (a) => sigmoidOf(arg(a, 0)),
  silu: (a) => bin('mul', arg(a, 0), sigmoidOf(arg(a, 0))),
  not: (a) => unary('not', arg(a, 0)),
  gelu: (a, ctx) => {
    const x = arg(a, 0);
    const t = exprType(x);
    const approx = ctx.attrs['approx'];
    const isTanh = approx !== undefined && approx.kind === 'str' && approx.value === 'tanh';
    // tanh: 0.5*x*(1 + tanh(sqrt(2/pi)*(x + 0.044715*x^3)));  erf: 0.5*x*(1 + erf(x/sqrt(2)))
    const inner = isTanh
      ? call('tanh', [bin('mul', lit(t, Math.sqrt(2 / Math.PI)), bin('add', x, bin('mul', lit(t, 0.044715), bin('mul', x, bin('mul', x, x)))))], t)
      : call('erf', [bin('mul', x, lit(t, Math.SQRT1_2))], t);
    return bin('mul', bin('mul', lit(t, 0.5), x), bin('add', lit(t, 1), inner));
  },
  cast: (a, ctx) => cast(ctx.result, arg(a, 0)),
  add: binary('add'),
  sub: binary('sub'),
  mul: binary('mul'),
  div: binary('div'),
  mod: (a) => {
    // Floor modulo (Python `%`): the result takes the divisor's sign.
    const x = arg(a, 0);
    const y = arg(a, 1);
    const t = exprType(x);
    if (t === 'i32') {
      const r = bin('rem', x, y);
      const fix = and(bin('ne', r, lit(t, 0)), bin('ne', bin('lt', r, lit(t, 0)), bin('lt', y, lit(t, 0))));
      return select(fix, bin('add', r, y), r);
    }
    return bin('sub', x, bin('mul', y, call('floor', [bin('div', x, y)], t)));
  },
  pow: (a) => call('pow', [arg(a, 0), arg(a, 1)], exprType(arg(a, 0))),
  max: (a) => call('max', [arg(a, 0), arg(a, 1)], exprType(arg(a, 0))),
  min: (a) => call('min', [arg(a, 0), arg(a, 1)], exprType(arg(a, 0))),
  eq: binary('eq'),
  ne: binary('ne'),
  lt: binary('lt'),
  le: binary('le'),
  gt: binary('gt'),
  ge: binary('ge'),
  and: binary('and'),
  or: binary('or'),
  where: (a) => select(arg(a, 0), arg(a, 1), arg(a, 2)),
};

function isElementwiseOp(op: string): op is ElementwiseOp {
  return Object.prototype.hasOwnProperty.call(scalarLowering, op);
}

const comparisonOps: ReadonlySet<string> = new Set(['eq', 'ne', 'lt', 'le', 'gt', 'ge']);

/** The type each operand is converted to before the per-element function. */
function operandTypes(op: string, operands: readonly DType[], result: DType): ScalarType[] {
  if (op === 'where') return [computeType('bool'), computeType(result), computeType(result)];
  if (op === 'cast') return operands.map(computeType);
  if (comparisonOps.has(op)) {
    const t = computeType(operands[0] ?? result);
    return operands.map(() => t);
  }
  return operands.map(() => computeType(result));
}

// ---------------------------------------------------------------------------------------------

class Lowering {
  private readonly kernels: Kernel[] = [];
  private readonly storage = new Map<number, number | 'folded'>();
  private readonly names = new NameScope(kernelNameReserved);
  private readonly temps = new Map<number, KernelTemp>();
  private readonly origin: number[] = [];

  constructor(
    private readonly g: Graph,
    private readonly s: Schedule,
    private readonly target: TargetLimits,
  ) {}

  /** The first fused_attention_lse node of each fused_attention (its kernel writes that node's buffer). */
  private readonly lseNodes = new Map<number, number>();

  private lseOf(attention: number): number | undefined {
    return this.lseNodes.get(attention);
  }

  run(): KernelProgram {
    const isOutput = new Set(this.g.outputs.map((o) => o.value));
    const uses = new Map<number, Node[]>();
    for (const n of this.g.nodes) for (const o of n.operands) uses.set(o, [...(uses.get(o) ?? []), n]);
    for (const n of this.g.nodes) {
      const a = n.operands[0];
      if (n.op === 'fused_attention_lse' && a !== undefined && !this.lseNodes.has(a)) this.lseNodes.set(a, n.id);
    }
    for (const n of this.g.nodes) {
      switch (n.op) {
        case 'input':
        case 'weight':
          this.storage.set(n.id, n.id);
          break;
        case 'reshape':
        case 'view': // fold-views: consumers read the source's buffer through the map (lower-view.ts)
          this.storage.set(n.id, this.bufferOf(this.operand(n, 0)));
          break;
        case 'fused_attention_lse': {
          // The attention kernel writes the LSE (lowerFusedAttention); a second LSE node of the
          // same attention (no CSE ran) shares the first one's buffer.
          const first = this.g.nodes[this.lseOf(this.operand(n, 0).id) ?? n.id] ?? n;
          this.storage.set(n.id, first.id === n.id ? n.id : this.bufferOf(first));
          break;
        }
        case 'const': {
          const foldable = !isOutput.has(n.id) && (uses.get(n.id) ?? []).every((u) => isElementwiseOp(u.op) || u.op === 'grid');
          if (foldable) this.storage.set(n.id, 'folded');
          else this.emitConstFill(n);
          break;
        }
        default:
          this.storage.set(n.id, n.id);
          this.lowerNode(n);
      }
      while (this.origin.length < this.kernels.length) this.origin.push(n.id);
    }
    return { graph: this.g.name, dims: this.g.dims, kernels: this.kernels, storage: this.storage, temps: this.temps, origin: this.origin };
  }

  private operand(n: Node, i: number): Node {
    const id = n.operands[i];
    const o = id === undefined ? undefined : this.g.nodes[id];
    if (o === undefined) throw new Error(`internal: node %${n.id} (${n.op}) lacks operand ${i}`);
    return o;
  }

  private bufferOf(n: Node): number {
    const s = this.storage.get(n.id);
    if (s === undefined || s === 'folded') throw new Error(`internal: %${n.id} has no buffer`);
    return s;
  }

  private lowerNode(n: Node): void {
    if (isElementwiseOp(n.op)) return this.emitElementwise(n, n.op);
    switch (n.op) {
      case 'matmul':
        return this.emitMatmul(n);
      case 'sum':
      case 'mean':
      case 'max_reduce':
      case 'logsumexp':
        return this.emitReduce(n);
      case 'softmax':
        return this.emitSoftmax(n);
      case 'layernorm':
      case 'rmsnorm':
        return this.emitNorm(n);
      case 'gather':
        return this.emitGather(n);
      case 'permute':
        return this.emitPermute(n);
      case 'slice':
        return this.emitSlice(n);
      case 'concat':
        return this.emitConcat(n);
      case 'arange':
        return this.emitArange(n);
      case 'grid':
        return this.emitGrid(n);
      case 'fused_attention':
        return this.emitFusedAttention(n);
      case 'fused_map':
        return this.emitFusedMap(n);
      case 'fused_matmul':
        return this.emitMatmul(n);
      default:
        throw new Error(`internal: op '${n.op}' at ${formatSpan(n.loc)} has no plain lowering`);
    }
  }

  private finish(
    n: Node | readonly Node[],
    op: string,
    kb: { readonly buffers: readonly GlobalBuffer[]; readonly shared: readonly SharedArray[]; readonly bindings: readonly number[] },
    body: readonly Stmt[],
    workgroupSize: readonly [number, number, number],
    grid: readonly [SizeExpr, SizeExpr, SizeExpr],
    schedule: KernelSchedule,
    traffic: Traffic,
    when?: StepCondition,
  ): void {
    const nodes = Array.isArray(n) ? (n as readonly Node[]) : [n as Node];
    const used = new Set<string>();
    forEachExpr(body, (e) => {
      if (e.kind === 'uniform') used.add(e.dim);
    });
    const uniforms = this.g.dims.filter((d) => used.has(d));
    for (const d of used) if (!this.g.dims.includes(d)) throw new Error(`internal: kernel ${op} reads unknown dim ${d}`);
    // `attention_l0_matmul` from the source scope of the first node; `k<N>_<op>` without one (.ir input).
    const scope = nodes[0]?.scope;
    const name = this.names.claim(scope !== undefined ? `${scope}_${op}` : `k${this.kernels.length}_${op}`);
    this.kernels.push({
      name,
      op,
      locs: nodes.map((x) => formatSpan(x.loc)),
      workgroupSize,
      grid,
      uniforms,
      buffers: kb.buffers,
      shared: kb.shared,
      body,
      schedule,
      traffic,
      bindings: kb.bindings,
      ...(when !== undefined ? { when } : {}),
    });
  }

  /** fused_attention: one flash-attention kernel, or the split-K pair for decode (lower-attention.ts). */
  private emitFusedAttention(n: Node): void {
    const firstTempId = this.g.nodes.length + this.temps.size;
    const attention = this.s.byShape?.attention?.[scheduleShapeKey(this.g, n)] ?? this.s.attention;
    const lseNode = this.g.nodes[this.lseOf(n.id) ?? -1];
    const lse = lseNode === undefined ? {} : { lse: lseNode };
    const r = lowerFusedAttention({ graph: this.g, node: n, target: this.target, firstTempId, ...(attention !== undefined ? { schedule: attention } : {}), ...(this.s.mmaAttention !== undefined ? { mma: this.s.mmaAttention } : {}), ...lse });
    for (const [id, t] of r.temps) {
      this.temps.set(id, t);
      this.storage.set(id, id);
    }
    for (const k of r.kernels) this.finish(n, k.op, k, k.body, k.workgroupSize, k.grid, k.schedule, k.traffic, k.when);
  }

  /** Workgroup ids past `count` (a formula) along x then y: [min(count, max), ceil(count / max)]. */
  private linearGrid(count: SizeExpr): readonly [SizeExpr, SizeExpr, SizeExpr] {
    const m = this.s.maxWorkgroupsPerDim;
    return [sMinConst(count, m), sCeilDiv(count, m), sConst(1)];
  }

  /** The flat workgroup index of a linearGrid launch: wid.y * max + wid.x. */
  private linearWorkgroup(kb: KernelBuilder, out: Stmt[]): Expr {
    return kb.let(out, 'wg', add(mul(builtin('workgroup_id', 1), u32(this.s.maxWorkgroupsPerDim)), builtin('workgroup_id', 0)));
  }

  // ---- one thread per output element ----

  /**
   * A kernel computing out[flat] = value(indices) for every element of `n`'s result.
   * `value` gets the output multi-index (u32 per axis, empty when `needsIndex` is false) and flat index.
   */
  private emitMap(
    n: Node,
    op: string,
    kb: KernelBuilder,
    needsIndex: boolean,
    value: (body: Stmt[], idx: readonly Expr[], flat: Expr) => Expr,
    traffic: Traffic,
  ): void {
    const shape = n.type.shape;
    const wgSize = this.s.mapWorkgroupSize;
    const body: Stmt[] = [];
    const wg = this.linearWorkgroup(kb, body);
    const flat = kb.let(body, 'flat', add(mul(wg, u32(wgSize)), builtin('local_id', 0)));
    const inner: Stmt[] = [];
    const idx: Expr[] = [];
    if (needsIndex && shape.length > 0) {
      let rest = flat;
      for (let k = shape.length - 1; k >= 0; k--) {
        const d = dimExpr(shape[k] ?? dimConst(1));
        if (k === 0) idx[0] = kb.let(inner, 'i0', rest);
        else {
          idx[k] = kb.let(inner, `i${k}`, rem(rest, d));
          rest = kb.let(inner, `q${k}`, div(rest, d));
        }
      }
    }
    const val = value(inner, idx, flat);
    const outSlot = kb.output('out', n.id, n.type.dtype);
    inner.push({ kind: 'store', slot: outSlot, index: flat, value: cast(storageType(n.type.dtype), val) });
    body.push({ kind: 'if', cond: lt(flat, productExpr(shape)), then: inner, else: [] });
    const count = sCeilDiv(shapeElements(shape), wgSize);
    this.finish(n, op, kb, body, [wgSize, 1, 1], this.linearGrid(count), { kind: 'map', workgroupSize: wgSize }, traffic);
  }

  /** Loads operand `o` (as compute type) at the element of the output multi-index, broadcasting. */
  private broadcastLoad(kb: KernelBuilder, body: Stmt[], o: Node, role: string, out: readonly Dim[], idx: readonly Expr[], flat: Expr): Expr {
    const st = this.storage.get(o.id);
    if (st === 'folded') return this.constLiteral(o);
    const slot = kb.input(role, o.id, o.type.dtype);
    const index = this.broadcastIndex(o.type.shape, out, idx, flat);
    return kb.let(body, role, cast(computeType(o.type.dtype), load(slot, index, storageType(o.type.dtype))));
  }

  private broadcastIndex(shape: readonly Dim[], out: readonly Dim[], idx: readonly Expr[], flat: Expr): Expr {
    if (shape.length === out.length && shape.every((d, k) => dimEquals(d, out[k] ?? d))) return flat;
    const st = strides(shape);
    const lead = out.length - shape.length;
    let index: Expr = u32(0);
    shape.forEach((d, k) => {
      const od = out[lead + k] ?? d;
      if (isOne(d) && !isOne(od)) return; // broadcast axis
      index = add(index, mul(idx[lead + k] ?? u32(0), st[k] ?? u32(1)));
    });
    return index;
  }

  private constLiteral(n: Node): Expr {
    return lit(computeType(n.type.dtype), floatAttr(n, 'value'));
  }

  private emitConstFill(n: Node): void {
    this.storage.set(n.id, n.id);
    const kb = new KernelBuilder();
    const value = this.constLiteral(n);
    const outBytes = sMul(shapeElements(n.type.shape), sConst(storageBytes(n.type.dtype)));
    this.emitMap(n, 'const', kb, false, () => value, { bytesRead: sConst(0), bytesWritten: outBytes, flops: sConst(0) });
  }

  private emitElementwise(n: Node, op: ElementwiseOp): void {
    const kb = new KernelBuilder();
    const operands = n.operands.map((_, i) => this.operand(n, i));
    const out = n.type.shape;
    const needsIndex = operands.some(
      (o) => this.storage.get(o.id) !== 'folded' && !(o.type.shape.length === out.length && o.type.shape.every((d, k) => dimEquals(d, out[k] ?? d))),
    );
    const types = operandTypes(op, operands.map((o) => o.type.dtype), n.type.dtype);
    const roles = operands.length === 1 ? ['x'] : operands.length === 2 ? ['a', 'b'] : ['c', 'a', 'b'];
    const tensorOperands = operands.filter((o) => this.storage.get(o.id) !== 'folded');
    this.emitMap(
      n,
      op,
      kb,
      needsIndex,
      (body, idx, flat) => {
        const args = operands.map((o, i) => cast(types[i] ?? computeType(o.type.dtype), this.broadcastLoad(kb, body, o, roles[i] ?? `x${i}`, out, idx, flat)));
        return scalarLowering[op](args, { result: computeType(n.type.dtype), attrs: n.attrs });
      },
      mapTraffic(n, tensorOperands.map((o) => ({ elements: shapeElements(out), dtype: o.type.dtype })), this.flops(n)),
    );
  }

  private emitPermute(n: Node): void {
    const x = this.operand(n, 0);
    const perm = intsAttr(n, 'perm');
    const kb = new KernelBuilder();
    this.emitMap(
      n,
      'permute',
      kb,
      true,
      (body, idx) => {
        const st = strides(x.type.shape);
        let index: Expr = u32(0);
        perm.forEach((p, k) => (index = add(index, mul(idx[k] ?? u32(0), st[p] ?? u32(1)))));
        const slot = kb.input('x', x.id, x.type.dtype);
        return kb.let(body, 'x', cast(computeType(x.type.dtype), load(slot, index, storageType(x.type.dtype))));
      },
      mapTraffic(n, [{ elements: shapeElements(n.type.shape), dtype: x.type.dtype }], this.flops(n)),
    );
  }

  private emitSlice(n: Node): void {
    const x = this.operand(n, 0);
    const axis = intAttr(n, 'axis');
    const start = dimAttr(n, 'start');
    const kb = new KernelBuilder();
    this.emitMap(
      n,
      'slice',
      kb,
      true,
      (body, idx) => {
        const st = strides(x.type.shape);
        let index: Expr = u32(0);
        idx.forEach((i, k) => (index = add(index, mul(k === axis ? add(i, dimExpr(start)) : i, st[k] ?? u32(1)))));
        const slot = kb.input('x', x.id, x.type.dtype);
        return kb.let(body, 'x', cast(computeType(x.type.dtype), load(slot, index, storageType(x.type.dtype))));
      },
      mapTraffic(n, [{ elements: shapeElements(n.type.shape), dtype: x.type.dtype }], this.flops(n)),
    );
  }

  private emitConcat(n: Node): void {
    const axis = intAttr(n, 'axis');
    const operands = n.operands.map((_, i) => this.operand(n, i));
    const kb = new KernelBuilder();
    const t = computeType(n.type.dtype);
    this.emitMap(
      n,
      'concat',
      kb,
      true,
      (body, idx) => {
        const c = idx[axis] ?? u32(0);
        const acc = kb.fresh('val');
        body.push({ kind: 'var', name: acc, type: t, init: zeroOf(t) });
        // if (c < end0) { val = x0[...] } else if (c < end1) { ... } else { val = x_last[...] }
        let offset: Expr = u32(0);
        const branches = operands.map((o, i) => {
          const st = strides(o.type.shape);
          const local = kb.fresh('c');
          let index: Expr = u32(0);
          idx.forEach((ik, k) => (index = add(index, mul(k === axis ? v(local, 'u32') : ik, st[k] ?? u32(1)))));
          const slot = this.storage.get(o.id) === 'folded' ? -1 : kb.input(`x${i}`, o.id, o.type.dtype);
          const valueExpr = slot < 0 ? this.constLiteral(o) : cast(t, load(slot, index, storageType(o.type.dtype)));
          const stmts: Stmt[] = [
            { kind: 'let', name: local, type: 'u32', init: sub(c, offset) },
            { kind: 'assign', name: acc, value: valueExpr },
          ];
          const end = add(offset, dimExpr(o.type.shape[axis] ?? dimConst(1)));
          const cond = lt(c, end);
          offset = end;
          return { cond, stmts };
        });
        let chain: Stmt[] = [];
        for (let i = branches.length - 1; i >= 0; i--) {
          const b = branches[i];
          if (b === undefined) continue;
          chain = i === branches.length - 1 ? b.stmts : [{ kind: 'if', cond: b.cond, then: b.stmts, else: chain }];
        }
        body.push(...chain);
        return v(acc, t);
      },
      mapTraffic(n, [{ elements: shapeElements(n.type.shape), dtype: n.type.dtype }], this.flops(n)),
    );
  }

  private emitGather(n: Node): void {
    const table = this.operand(n, 0);
    const ids = this.operand(n, 1);
    const rest = table.type.shape.slice(1);
    const rows = table.type.shape[0] ?? dimConst(1);
    const kb = new KernelBuilder();
    const outElems = shapeElements(n.type.shape);
    this.emitMap(
      n,
      'gather',
      kb,
      false,
      (body, _idx, flat) => {
        const rowLen = productExpr(rest);
        const tableSlot = kb.input('table', table.id, table.type.dtype);
        const j = kb.let(body, 'j', rem(flat, rowLen));
        const p = kb.let(body, 'p', div(flat, rowLen));
        const idsSlot = kb.input('ids', ids.id, ids.type.dtype);
        const id = kb.let(body, 'id', cast('i32', load(idsSlot, p, storageType(ids.type.dtype))));
        // Out-of-range ids are clamped to the table (the interpreter reports them; a kernel cannot).
        const row = kb.let(body, 'row', call('min', [cast('u32', call('max', [id, lit('i32', 0)], 'i32')), sub(dimExpr(rows), u32(1))], 'u32'));
        return kb.let(body, 'x', cast(computeType(table.type.dtype), load(tableSlot, add(mul(row, rowLen), j), storageType(table.type.dtype))));
      },
      mapTraffic(n, [
        { elements: outElems, dtype: table.type.dtype },
        { elements: outElems, dtype: ids.type.dtype },
      ], this.flops(n)),
    );
  }

  private emitArange(n: Node): void {
    const start = dimAttr(n, 'start');
    const kb = new KernelBuilder();
    this.emitMap(n, 'arange', kb, false, (_b, _i, flat) => bin('add', cast('i32', dimExpr(start)), cast('i32', flat)), mapTraffic(n, [], this.flops(n)));
  }

  private emitGrid(n: Node): void {
    const lambda = lambdaAttr(n, 'body');
    const operands = n.operands.map((_, i) => this.operand(n, i));
    const kb = new KernelBuilder();
    const slots = new Map<number, number>();
    const readBytes = (e: ScalarExpr): number => {
      switch (e.kind) {
        case 'read': {
          const o = operands[e.operand];
          const own = o === undefined || this.storage.get(o.id) === 'folded' ? 0 : storageBytes(o.type.dtype);
          return own + e.indices.reduce((s, x) => s + readBytes(x), 0);
        }
        case 'apply':
          return e.args.reduce((s, x) => s + readBytes(x), 0);
        default:
          return 0;
      }
    };
    const perElement = readBytes(lambda.body);
    const reads = perElement > 0 ? [sMul(shapeElements(n.type.shape), sConst(perElement))] : [];
    const traffic = mapTraffic(n, [], this.flops(n));
    this.emitMap(
      n,
      'grid',
      kb,
      true,
      (body, idx) => {
        const tr = (e: ScalarExpr): Expr => {
          switch (e.kind) {
            case 'index':
              return cast('i32', idx[e.axis] ?? u32(0));
            case 'dim':
              return cast('i32', dimExpr(e.dim));
            case 'const':
              return lit(computeType(e.dtype), e.value);
            case 'read': {
              const o = operands[e.operand];
              if (o === undefined) throw new Error(`internal: grid reads missing operand ${e.operand}`);
              if (this.storage.get(o.id) === 'folded') return this.constLiteral(o);
              let slot = slots.get(e.operand);
              if (slot === undefined) {
                slot = kb.input(`t${e.operand}`, o.id, o.type.dtype);
                slots.set(e.operand, slot);
              }
              const st = strides(o.type.shape);
              let index: Expr = u32(0);
              e.indices.forEach((ix, k) => (index = add(index, mul(cast('u32', tr(ix)), st[k] ?? u32(1)))));
              return cast(computeType(e.dtype), load(slot, index, storageType(o.type.dtype)));
            }
            case 'apply': {
              if (!isElementwiseOp(e.op)) throw new Error(`internal: grid body applies non-elementwise op '${e.op}'`);
              const args = e.args.map(tr);
              return scalarLowering[e.op](args, { result: computeType(e.dtype), attrs: {} });
            }
            default:
              return assertNever(e);
          }
        };
        return kb.let(body, 'val', tr(lambda.body));
      },
      { ...traffic, bytesRead: reads[0] ?? sConst(0) },
    );
  }

  // ---- one workgroup per row ----

  /**
   * Reduces `acc` (f32, one value per thread) over the workgroup; every thread gets the result.
   * With subgroups: subgroup reduce, one partial per subgroup in workgroup memory, then each
   * thread folds the partials. Without: a shared-memory tree (log2(workgroup) barriers).
   */
  private workgroupReduce(kb: KernelBuilder, out: Stmt[], acc: Expr, op: 'sum' | 'max', prefix: string): Expr {
    const wg = this.s.rowWorkgroupSize;
    const arr = kb.sharedArray(`${prefix}_part`, 'f32', wg);
    const combine = (a: Expr, b: Expr): Expr => (op === 'sum' ? bin('add', a, b) : call('max', [a, b], 'f32'));
    const lid = builtin('local_id', 0);
    if (this.s.useSubgroups) {
      const sg = kb.let(out, `${prefix}_sg`, subgroup(op, acc));
      const sgSize = builtin('subgroup_size');
      out.push({ kind: 'if', cond: bin('eq', builtin('subgroup_lane'), u32(0)), then: [{ kind: 'array_store', array: arr, index: div(lid, sgSize), value: sg }], else: [] });
      out.push({ kind: 'barrier' });
      const total = kb.fresh(`${prefix}_total`);
      const s = kb.fresh('p');
      out.push({ kind: 'var', name: total, type: 'f32', init: arrayLoad(arr, u32(0), 'f32') });
      out.push({
        kind: 'for',
        var: s,
        start: u32(1),
        end: div(u32(wg), sgSize),
        step: u32(1),
        body: [{ kind: 'assign', name: total, value: combine(v(total, 'f32'), arrayLoad(arr, v(s, 'u32'), 'f32')) }],
      });
      return v(total, 'f32');
    }
    out.push({ kind: 'array_store', array: arr, index: lid, value: acc });
    out.push({ kind: 'barrier' });
    for (let half = wg / 2; half >= 1; half /= 2) {
      out.push({
        kind: 'if',
        cond: lt(lid, u32(half)),
        then: [{ kind: 'array_store', array: arr, index: lid, value: combine(arrayLoad(arr, lid, 'f32'), arrayLoad(arr, add(lid, u32(half)), 'f32')) }],
        else: [],
      });
      out.push({ kind: 'barrier' });
    }
    return kb.let(out, `${prefix}_total`, arrayLoad(arr, u32(0), 'f32'));
  }

  /** Launches one workgroup per row (`rows` rows); `body` runs under `if (row < rows)`. */
  private emitRows(
    n: Node,
    op: string,
    kb: KernelBuilder,
    rows: readonly Dim[],
    build: (body: Stmt[], row: Expr) => void,
    traffic: Traffic,
  ): void {
    const wg = this.s.rowWorkgroupSize;
    const body: Stmt[] = [];
    const row = this.linearWorkgroup(kb, body);
    const inner: Stmt[] = [];
    build(inner, row);
    // `row` depends on the workgroup id only, so the barriers inside stay in uniform control flow.
    body.push({ kind: 'if', cond: lt(row, productExpr(rows)), then: inner, else: [] });
    const schedule: KernelSchedule = { kind: 'row', workgroupSize: wg, useSubgroups: this.s.useSubgroups };
    this.finish(n, op, kb, body, [wg, 1, 1], this.linearGrid(shapeElements(rows)), schedule, traffic);
  }

  /** for (var j = local_id.x; j < count; j += workgroupSize) { body(j) } */
  private rowLoop(kb: KernelBuilder, count: Expr, build: (body: Stmt[], j: Expr) => void): Stmt {
    const j = kb.fresh('j');
    const body: Stmt[] = [];
    build(body, v(j, 'u32'));
    return { kind: 'for', var: j, start: builtin('local_id', 0), end: count, step: u32(this.s.rowWorkgroupSize), body };
  }

  private emitReduce(n: Node): void {
    const x = this.operand(n, 0);
    const axes = intsAttr(n, 'axes');
    void boolAttr(n, 'keepdims');
    const shape = x.type.shape;
    const kept = shape.map((_, k) => k).filter((k) => !axes.includes(k));
    const keptDims = kept.map((k) => shape[k] ?? dimConst(1));
    const redDims = axes.map((k) => shape[k] ?? dimConst(1));
    const st = strides(shape);
    const isMax = n.op === 'max_reduce';
    const isLse = n.op === 'logsumexp';
    const kb = new KernelBuilder();
    const xSlot = kb.input('x', x.id, x.type.dtype);
    const outSlot = kb.output('out', n.id, n.type.dtype);
    const trailing = axes.every((a, i) => a === shape.length - axes.length + i);
    const xt = storageType(x.type.dtype);
    this.emitRows(
      n,
      n.op,
      kb,
      keptDims,
      (body, row) => {
        // base: offset of the row's first element; trailing axes make it row * count.
        let base: Expr;
        if (trailing) base = kb.let(body, 'base', mul(row, productExpr(redDims)));
        else {
          let rest = row;
          let off: Expr = u32(0);
          for (let i = kept.length - 1; i >= 0; i--) {
            const k = kept[i] ?? 0;
            const d = dimExpr(shape[k] ?? dimConst(1));
            const ik = i === 0 ? rest : kb.let(body, `o${k}`, rem(rest, d));
            if (i > 0) rest = kb.let(body, `r${k}`, div(rest, d));
            off = add(off, mul(ik, st[k] ?? u32(1)));
          }
          base = kb.let(body, 'base', off);
        }
        /** Element j of the row (as f32): offset j along the reduced axes. */
        const xAt = (loop: Stmt[], j: Expr): Expr => {
          let offset: Expr;
          if (trailing) offset = j;
          else {
            let rest = j;
            let off: Expr = u32(0);
            for (let i = axes.length - 1; i >= 0; i--) {
              const k = axes[i] ?? 0;
              const d = dimExpr(shape[k] ?? dimConst(1));
              const ik = i === 0 ? rest : kb.let(loop, `a${k}`, rem(rest, d));
              if (i > 0) rest = kb.let(loop, `b${k}`, div(rest, d));
              off = add(off, mul(ik, st[k] ?? u32(1)));
            }
            offset = off;
          }
          return kb.let(loop, 'x', cast('f32', load(xSlot, add(base, offset), xt)));
        };
        const acc = kb.fresh('acc');
        body.push({ kind: 'var', name: acc, type: 'f32', init: lit('f32', isMax || isLse ? -Infinity : 0) });
        body.push(
          this.rowLoop(kb, productExpr(redDims), (loop, j) => {
            const xv = xAt(loop, j);
            loop.push({ kind: 'assign', name: acc, value: isMax || isLse ? call('max', [v(acc, 'f32'), xv], 'f32') : bin('add', v(acc, 'f32'), xv) });
          }),
        );
        if (isLse) {
          // logsumexp: m = the row max, then m + log(sum exp(x - m)). An element equal to m adds
          // exactly 1, so a row of only -inf gives -inf + log(n) = -inf (exp(-inf - -inf) would be
          // NaN) and a +inf element gives +inf.
          const m = this.workgroupReduce(kb, body, v(acc, 'f32'), 'max', 'red');
          const mRow = kb.let(body, 'm_row', m);
          const sum = kb.fresh('sum');
          body.push({ kind: 'var', name: sum, type: 'f32', init: lit('f32', 0) });
          body.push(
            this.rowLoop(kb, productExpr(redDims), (loop, j) => {
              const xv = xAt(loop, j);
              const e = select(bin('eq', xv, mRow), lit('f32', 1), call('exp', [bin('sub', xv, mRow)], 'f32'));
              loop.push({ kind: 'assign', name: sum, value: bin('add', v(sum, 'f32'), e) });
            }),
          );
          const total = this.workgroupReduce(kb, body, v(sum, 'f32'), 'sum', 'lse');
          body.push({
            kind: 'if',
            cond: bin('eq', builtin('local_id', 0), u32(0)),
            then: [{ kind: 'store', slot: outSlot, index: row, value: cast(storageType(n.type.dtype), bin('add', mRow, call('log', [total], 'f32'))) }],
            else: [],
          });
          return;
        }
        let total = this.workgroupReduce(kb, body, v(acc, 'f32'), isMax ? 'max' : 'sum', 'red');
        if (n.op === 'mean') total = bin('div', total, cast('f32', productExpr(redDims)));
        body.push({
          kind: 'if',
          cond: bin('eq', builtin('local_id', 0), u32(0)),
          then: [{ kind: 'store', slot: outSlot, index: row, value: cast(storageType(n.type.dtype), total) }],
          else: [],
        });
      },
      {
        // logsumexp reads its row twice (max, then the sum of exponentials).
        bytesRead: isLse ? sMul(bytesOf(shapeElements(shape), x.type.dtype), sConst(2)) : bytesOf(shapeElements(shape), x.type.dtype),
        bytesWritten: bytesOf(shapeElements(n.type.shape), n.type.dtype),
        flops: this.flops(n),
      },
    );
  }

  // ---- fused ops (lower-fused.ts) ----

  private fusedHost(kb: KernelBuilder): FusedHost {
    return {
      operand: (n, i) => this.operand(n, i),
      folded: (o) => (this.storage.get(o.id) === 'folded' ? this.constLiteral(o) : undefined),
      dimExpr,
      flops: (n) => this.flops(n),
      kb,
      scalar: (op, args, result) => {
        if (!isElementwiseOp(op)) throw new Error(`internal: lambda applies non-elementwise op '${op}'`);
        return scalarLowering[op](args, { result: computeType(result), attrs: {} });
      },
    };
  }

  /** fused_map: one thread per output element evaluates the lambda (fuse-elementwise). */
  private emitFusedMap(n: Node): void {
    const kb = new KernelBuilder();
    const host = this.fusedHost(kb);
    const l = lambdaAttr(n, 'body');
    const operands = n.operands.map((_, i) => this.operand(n, i));
    this.emitMap(n, 'fused_map', kb, true, (body, idx, flat) => translateLambda(host, body, n, l.params, l.body, operands, idx, flat), fusedMapTraffic(host, n));
  }

  private flops(n: Node): SizeExpr {
    const def = getOp(n.op);
    if (def === undefined) return sConst(0);
    const types = n.operands.map((_, i) => this.operand(n, i).type);
    return dimToSize(def.flops(types, n.type, n.attrs));
  }

  private emitSoftmax(n: Node): void {
    const x = this.operand(n, 0);
    const axis = intAttr(n, 'axis');
    const shape = x.type.shape;
    const len = shape[axis] ?? dimConst(1);
    const innerDims = shape.slice(axis + 1);
    const rows = shape.filter((_, k) => k !== axis);
    const kb = new KernelBuilder();
    const xSlot = kb.input('x', x.id, x.type.dtype);
    const outSlot = kb.output('out', n.id, n.type.dtype);
    const xt = storageType(x.type.dtype);
    const negInf = lit('f32', -Infinity);
    const elems = shapeElements(shape);
    this.emitRows(
      n,
      'softmax',
      kb,
      rows,
      (body, row) => {
        // Element j of the row sits at base + j * stride (stride 1 for the last axis).
        const stride = productExpr(innerDims);
        const base =
          innerDims.length === 0
            ? kb.let(body, 'base', mul(row, dimExpr(len)))
            : kb.let(body, 'base', add(mul(mul(div(row, stride), dimExpr(len)), stride), rem(row, stride)));
        const at = (j: Expr): Expr => add(base, mul(j, stride));
        // Pass 1: online max and rescaled sum per thread (Milakov & Gimelshein, online softmax).
        const mName = kb.fresh('m');
        const lName = kb.fresh('l');
        body.push({ kind: 'var', name: mName, type: 'f32', init: negInf });
        body.push({ kind: 'var', name: lName, type: 'f32', init: lit('f32', 0) });
        const m = v(mName, 'f32');
        const l = v(lName, 'f32');
        body.push(
          this.rowLoop(kb, dimExpr(len), (loop, j) => {
            const xv = kb.let(loop, 'x', cast('f32', load(xSlot, at(j), xt)));
            const mn = kb.let(loop, 'mn', call('max', [m, xv], 'f32'));
            // A row prefix of -inf keeps l = 0 (exp(-inf - -inf) would be NaN).
            const upd = bin('add', bin('mul', l, call('exp', [bin('sub', m, mn)], 'f32')), call('exp', [bin('sub', xv, mn)], 'f32'));
            loop.push({ kind: 'assign', name: lName, value: select(bin('eq', mn, negInf), lit('f32', 0), upd) });
            loop.push({ kind: 'assign', name: mName, value: mn });
          }),
        );
        const rowMax = kb.let(body, 'row_max', this.workgroupReduce(kb, body, m, 'max', 'mx'));
        const scaled = kb.let(body, 'l_scaled', select(bin('eq', m, negInf), lit('f32', 0), bin('mul', l, call('exp', [bin('sub', m, rowMax)], 'f32'))));
        const rowSum = kb.let(body, 'row_sum', this.workgroupReduce(kb, body, scaled, 'sum', 'sm'));
        // Pass 2: write; a fully masked row (max = -inf) gives zeros, not NaN.
        const isMasked = kb.let(body, 'masked', bin('eq', rowMax, negInf));
        body.push(
          this.rowLoop(kb, dimExpr(len), (loop, j) => {
            const idx = kb.let(loop, 'at', at(j));
            const xv = kb.let(loop, 'x', cast('f32', load(xSlot, idx, xt)));
            const y = select(isMasked, lit('f32', 0), bin('div', call('exp', [bin('sub', xv, rowMax)], 'f32'), rowSum));
            loop.push({ kind: 'store', slot: outSlot, index: idx, value: cast(storageType(n.type.dtype), y) });
          }),
        );
      },
      {
        bytesRead: sMul(sConst(2), bytesOf(elems, x.type.dtype)), // two passes over the row
        bytesWritten: bytesOf(elems, n.type.dtype),
        flops: this.flops(n),
      },
    );
  }

  private emitNorm(n: Node): void {
    const isLayer = n.op === 'layernorm';
    const x = this.operand(n, 0);
    const gamma = this.operand(n, 1);
    const beta = isLayer ? this.operand(n, 2) : undefined;
    const eps = floatAttr(n, 'eps');
    const shape = x.type.shape;
    const len = shape[shape.length - 1] ?? dimConst(1);
    const rows = shape.slice(0, -1);
    const kb = new KernelBuilder();
    const xSlot = kb.input('x', x.id, x.type.dtype);
    const gSlot = kb.input('gamma', gamma.id, gamma.type.dtype);
    const bSlot = beta === undefined ? -1 : kb.input('beta', beta.id, beta.type.dtype);
    const outSlot = kb.output('out', n.id, n.type.dtype);
    const xt = storageType(x.type.dtype);
    const elems = shapeElements(shape);
    this.emitRows(
      n,
      n.op,
      kb,
      rows,
      (body, row) => {
        const base = kb.let(body, 'base', mul(row, dimExpr(len)));
        const count = kb.let(body, 'count', cast('f32', dimExpr(len)));
        let mean: Expr = lit('f32', 0);
        let rstd: Expr;
        if (isLayer) {
          // Shifted sums (by the row's first element) keep E[x^2] - E[x]^2 from cancelling.
          const shift = kb.let(body, 'shift', cast('f32', load(xSlot, base, xt)));
          kb.fresh('s1');
          kb.fresh('s2');
          body.push({ kind: 'var', name: 's1', type: 'f32', init: lit('f32', 0) });
          body.push({ kind: 'var', name: 's2', type: 'f32', init: lit('f32', 0) });
          body.push(
            this.rowLoop(kb, dimExpr(len), (loop, j) => {
              const d = kb.let(loop, 'd', bin('sub', cast('f32', load(xSlot, add(base, j), xt)), shift));
              loop.push({ kind: 'assign', name: 's1', value: bin('add', v('s1', 'f32'), d) });
              loop.push({ kind: 'assign', name: 's2', value: bin('add', v('s2', 'f32'), bin('mul', d, d)) });
            }),
          );
          const t1 = this.workgroupReduce(kb, body, v('s1', 'f32'), 'sum', 's1');
          const t2 = this.workgroupReduce(kb, body, v('s2', 'f32'), 'sum', 's2');
          const md = kb.let(body, 'mean_d', bin('div', t1, count));
          const variance = kb.let(body, 'variance', call('max', [bin('sub', bin('div', t2, count), bin('mul', md, md)), lit('f32', 0)], 'f32'));
          mean = kb.let(body, 'mean', bin('add', shift, md));
          rstd = kb.let(body, 'rstd', call('rsqrt', [bin('add', variance, lit('f32', eps))], 'f32'));
        } else {
          kb.fresh('s2');
          body.push({ kind: 'var', name: 's2', type: 'f32', init: lit('f32', 0) });
          body.push(
            this.rowLoop(kb, dimExpr(len), (loop, j) => {
              const xv = kb.let(loop, 'x', cast('f32', load(xSlot, add(base, j), xt)));
              loop.push({ kind: 'assign', name: 's2', value: bin('add', v('s2', 'f32'), bin('mul', xv, xv)) });
            }),
          );
          const t2 = this.workgroupReduce(kb, body, v('s2', 'f32'), 'sum', 's2');
          rstd = kb.let(body, 'rstd', call('rsqrt', [bin('add', bin('div', t2, count), lit('f32', eps))], 'f32'));
        }
        body.push(
          this.rowLoop(kb, dimExpr(len), (loop, j) => {
            const xv = kb.let(loop, 'x', cast('f32', load(xSlot, add(base, j), xt)));
            const gv = cast('f32', load(gSlot, j, storageType(gamma.type.dtype)));
            let y = bin('mul', bin('mul', isLayer ? bin('sub', xv, mean) : xv, rstd), gv);
            if (beta !== undefined) y = bin('add', y, cast('f32', load(bSlot, j, storageType(beta.type.dtype))));
            loop.push({ kind: 'store', slot: outSlot, index: add(base, j), value: cast(storageType(n.type.dtype), y) });
          }),
        );
      },
      {
        // x twice (statistics, then output); gamma (and beta) once per row element.
        bytesRead: sMul(elems, sConst(2 * storageBytes(x.type.dtype) + storageBytes(gamma.type.dtype) + (beta === undefined ? 0 : storageBytes(beta.type.dtype)))),
        bytesWritten: bytesOf(elems, n.type.dtype),
        flops: this.flops(n),
      },
    );
  }

  // ---- tiled matmul ----

  private emitMatmul(n: Node): void {
    const a = this.operand(n, 0);
    const b = this.operand(n, 1);
    const ms = this.s.byShape?.matmul?.[scheduleShapeKey(this.g, n)] ?? this.s.matmul;
    const { tileRows: TM, tileCols: TN, tileK: TK, threadRows: RM, threadCols: RN } = ms;
    const thx = TN / RN;
    const thy = TM / RM;
    const threads = thx * thy;
    const out = n.type.shape;
    const rank = out.length;
    // [..., M, K] @ [K, N]: the batch folds into M (one big matrix, B read once per row tile).
    const foldBatch = b.type.shape.length === 2 && a.type.shape.length === rank;
    const M = foldBatch ? out.slice(0, -1).reduce((p, d) => dimMul(p, d), dimConst(1)) : (out[rank - 2] ?? dimConst(1));
    const N = out[rank - 1] ?? dimConst(1);
    const K = a.type.shape[a.type.shape.length - 1] ?? dimConst(1);
    const batch = foldBatch ? [] : out.slice(0, -2);
    const kb = new KernelBuilder();
    const aSlot = kb.input('a', a.id, a.type.dtype);
    const bSlot = kb.input('b', b.id, b.type.dtype);
    const oSlot = kb.output('out', n.id, n.type.dtype);
    // Direct schedule (CPU targets): no workgroup tiles; a norm fold still needs them.
    const isDirect = ms.isDirect === true && !(n.op === 'fused_matmul' && normPrologueOf(n.attrs) !== undefined);
    // Tensor cores (CUDA sm_80+): f16/bf16 operands whose rows are contiguous (mmaOperands).
    const mmaInput = this.s.mmaMatmul === undefined ? undefined : mmaOperands(this.g, n, a, b);
    const aTile = isDirect || mmaInput !== undefined ? '' : kb.sharedArray('a_tile', 'f32', TM * TK);
    const bTile = isDirect || mmaInput !== undefined ? '' : kb.sharedArray('b_tile', 'f32', TK * TN);
    const body: Stmt[] = [];
    const Me = dimExpr(M);
    const Ne = dimExpr(N);
    const Ke = dimExpr(K);
    // Batch offsets: the output batch index (workgroup z) unravelled, size-1 batch dims broadcast.
    const bz = builtin('workgroup_id', 2);
    const batchIdx: Expr[] = [];
    let rest: Expr = bz;
    for (let k = batch.length - 1; k >= 0; k--) {
      const d = dimExpr(batch[k] ?? dimConst(1));
      if (k === 0) batchIdx[0] = batch.length === 1 ? bz : kb.let(body, 'z0', rest);
      else {
        batchIdx[k] = kb.let(body, `z${k}`, rem(rest, d));
        rest = kb.let(body, `zq${k}`, div(rest, d));
      }
    }
    const matrixOffset = (shape: readonly Dim[], matrix: Expr): Expr => {
      const bshape = foldBatch ? [] : shape.slice(0, -2);
      const lead = batch.length - bshape.length;
      const st = strides(bshape);
      let off: Expr = u32(0);
      bshape.forEach((d, k) => {
        if (isOne(d)) return;
        off = add(off, mul(batchIdx[lead + k] ?? u32(0), st[k] ?? u32(1)));
      });
      return mul(off, matrix);
    };
    const aOff = kb.let(body, 'a_off', matrixOffset(a.type.shape, mul(Me, Ke)));
    const bOff = kb.let(body, 'b_off', matrixOffset(b.type.shape, mul(Ke, Ne)));
    const oOff = kb.let(body, 'out_off', mul(bz, mul(Me, Ne)));
    // fused_matmul: the epilogue lambda (lower-fused.ts) runs on the accumulator before the store.
    // The mma epilogue is emitted once per accumulator (unrolled): its operands are bound once.
    const host = mmaInput !== undefined ? bindOnce(this.fusedHost(kb), kb) : this.fusedHost(kb);
    const ep = n.op === 'fused_matmul' ? lambdaAttr(n, 'epilogue') : undefined;
    const epOperands = n.operands.map((_, i) => this.operand(n, i));
    const epilogueStore = (index: Expr, acc: Expr): Stmt[] => {
      if (ep === undefined) return [{ kind: 'store', slot: oSlot, index, value: cast(storageType(n.type.dtype), acc) }];
      const stmts: Stmt[] = [];
      const flat = kb.let(stmts, 'o', index);
      const idx = unravelFlat(host, stmts, out, flat);
      const value = translateLambda(host, stmts, n, ep.params, ep.body, epOperands, idx, flat, acc);
      stmts.push({ kind: 'store', slot: oSlot, index: flat, value: cast(storageType(n.type.dtype), value) });
      return stmts;
    };
    // An operand read through a view (fold-views): its multi-index from the tile row and column,
    // then the address in the source buffer from the view's map.
    const viewAddress = (o: Node, isA: boolean): ((grow: Expr, gcol: Expr) => Expr) | undefined => {
      if (o.op !== 'view') return undefined;
      return (grow, gcol) => {
        const shape = o.type.shape;
        let lead: Expr[];
        if (foldBatch) lead = isA ? unravel(shape.slice(0, -1), grow, dimExpr) : [grow];
        else {
          const bshape = shape.slice(0, -2);
          const off = batch.length - bshape.length;
          lead = [...bshape.map((d, k) => (isOne(d) ? u32(0) : (batchIdx[off + k] ?? u32(0)))), grow];
        }
        return elementOffset(this.g, o, [...lead, gcol], dimExpr);
      };
    };
    const Ms = dimToSize(M);
    const Ns = dimToSize(N);
    const Ks = dimToSize(K);
    const batchS = shapeElements(batch);
    const trafficFor = (tileRows: number, tileCols: number, extra: readonly SizeExpr[]): Traffic => ({
      // A is re-read once per column tile, B once per row tile (bounds-checked loads only).
      bytesRead: sAddAll([
        sMul(batchS, Ms, Ks, sCeilDiv(Ns, tileCols), sConst(storageBytes(a.type.dtype))),
        sMul(batchS, Ks, Ns, sCeilDiv(Ms, tileRows), sConst(storageBytes(b.type.dtype))),
        ...(ep === undefined ? [] : [epilogueReadBytes(host, n)]),
        ...extra,
      ]),
      bytesWritten: sMul(batchS, Ms, Ns, sConst(storageBytes(n.type.dtype))),
      flops: this.flops(n),
    });
    if (mmaInput !== undefined && this.s.mmaMatmul !== undefined) {
      const mm = this.s.mmaMatmul;
      const aView = viewAddress(a, true);
      const bView = viewAddress(b, false);
      const r = emitMmaMatmul(
        {
          kb,
          schedule: mm,
          input: mmaInput.input,
          aSlot,
          bSlot,
          M: Me,
          N: Ne,
          K: Ke,
          aAddr: aView ?? ((row, k) => add(aOff, add(mul(row, Ke), k))),
          bAddr: bView ?? ((k, col) => add(bOff, add(mul(k, Ne), col))),
          bLayout: mmaInput.bLayout,
          store: epilogueStore,
          outIndex: (row, col) => add(oOff, add(mul(row, Ne), col)),
        },
        body,
      );
      const grid: readonly [SizeExpr, SizeExpr, SizeExpr] = [sCeilDiv(Ns, mm.tileCols), sCeilDiv(Ms, mm.tileRows), batchS];
      this.finish(n, n.op, kb, body, [r.threads, 1, 1], grid, r.schedule, trafficFor(mm.tileRows, mm.tileCols, []));
      return;
    }
    const row0 = kb.let(body, 'row0', mul(builtin('workgroup_id', 1), u32(TM)));
    const col0 = kb.let(body, 'col0', mul(builtin('workgroup_id', 0), u32(TN)));
    const tx = builtin('local_id', 0);
    const ty = builtin('local_id', 1);
    const tid = builtin('local_index');
    const accName = kb.fresh('acc');
    body.push({ kind: 'private_array', name: accName, type: 'f32', length: RM * RN, init: lit('f32', 0) });
    // Stage one tile: for (e = tid; e < rows*cols; e += threads) tile[e] = in-bounds ? src : 0.
    const stage = (tile: string, cols: number, total: number, slot: number, dtype: DType, gr: (r: Expr) => Expr, gc: (c: Expr) => Expr, R: Expr, C: Expr, off: Expr, ld: Expr, addr?: (grow: Expr, gcol: Expr) => Expr): Stmt => {
      const e = kb.fresh('e');
      const lb: Stmt[] = [];
      const r = kb.let(lb, 'r', div(v(e, 'u32'), u32(cols)));
      const c = kb.let(lb, 'c', rem(v(e, 'u32'), u32(cols)));
      const grow = kb.let(lb, 'gr', gr(r));
      const gcol = kb.let(lb, 'gc', gc(c));
      const val = kb.fresh('t');
      lb.push({ kind: 'var', name: val, type: 'f32', init: lit('f32', 0) });
      lb.push({
        kind: 'if',
        cond: and(lt(grow, R), lt(gcol, C)),
        then: [{ kind: 'assign', name: val, value: cast('f32', load(slot, addr !== undefined ? addr(grow, gcol) : add(off, add(mul(grow, ld), gcol)), storageType(dtype))) }],
        else: [],
      });
      lb.push({ kind: 'array_store', array: tile, index: v(e, 'u32'), value: v(val, 'f32') });
      return { kind: 'for', var: e, start: tid, end: u32(total), step: u32(threads), body: lb };
    };
    // Direct K loop: per k, the thread's RN B values, then per row one A value and RN multiply-adds.
    // Indices past M or N are clamped (those outputs are never stored), so no branch per load.
    const directKLoop = (): Stmt => {
      const k = kb.fresh('k');
      const kvar = v(k, 'u32');
      const lb: Stmt[] = [];
      const bVal = kb.fresh('b_val');
      lb.push({ kind: 'private_array', name: bVal, type: 'f32', length: RN, init: lit('f32', 0) });
      const jb = kb.fresh('jj');
      const gcol = call('min', [add(col0, add(tx, mul(v(jb, 'u32'), u32(thx)))), bin('sub', Ne, u32(1))], 'u32');
      const bAddr = viewAddress(b, false);
      lb.push({ kind: 'for', var: jb, start: u32(0), end: u32(RN), step: u32(1), body: [{ kind: 'array_store', array: bVal, index: v(jb, 'u32'), value: cast('f32', load(bSlot, bAddr !== undefined ? bAddr(kvar, gcol) : add(bOff, add(mul(kvar, Ne), gcol)), storageType(b.type.dtype))) }] });
      const ia = kb.fresh('i');
      const iav = v(ia, 'u32');
      const ja = kb.fresh('jj');
      const jav = v(ja, 'u32');
      const grow = call('min', [add(row0, add(ty, mul(iav, u32(thy)))), bin('sub', Me, u32(1))], 'u32');
      const aAddr = viewAddress(a, true);
      const aVal = kb.fresh('a_val');
      const at = add(mul(iav, u32(RN)), jav);
      lb.push({
        kind: 'for',
        var: ia,
        start: u32(0),
        end: u32(RM),
        step: u32(1),
        body: [
          { kind: 'let', name: aVal, type: 'f32', init: cast('f32', load(aSlot, aAddr !== undefined ? aAddr(grow, kvar) : add(aOff, add(mul(grow, Ke), kvar)), storageType(a.type.dtype))) },
          { kind: 'for', var: ja, start: u32(0), end: u32(RN), step: u32(1), body: [{ kind: 'array_store', array: accName, index: at, value: bin('add', arrayLoad(accName, at, 'f32'), bin('mul', v(aVal, 'f32'), arrayLoad(bVal, jav, 'f32'))) }] },
        ],
      });
      return { kind: 'for', var: k, start: u32(0), end: Ke, step: u32(1), body: lb };
    };
    const k0 = kb.fresh('k0');
    const kv = v(k0, 'u32');
    // fused_matmul with a norm (fuse-norm): statistics and gamma/beta @ W ride the K loop.
    const norm = n.op === 'fused_matmul' ? normPrologueOf(n.attrs) : undefined;
    const fold = norm === undefined ? undefined : normFold({ kb, body, g: this.g, n, norm, k0: kv, K: Ke, tile: { TM, TN, TK, RM, RN, thx, thy }, aTile, bTile, acc: accName });
    const kk = kb.fresh('kk');
    const kkv = v(kk, 'u32');
    const iName = kb.fresh('i');
    const jName = kb.fresh('jj');
    const iv = v(iName, 'u32');
    const jv = v(jName, 'u32');
    const accIdx = add(mul(iv, u32(RN)), jv);
    const av = kb.fresh('a_val');
    const inner: Stmt = {
      kind: 'for',
      var: kk,
      start: u32(0),
      end: u32(TK),
      step: u32(1),
      body: [
        {
          kind: 'for',
          var: iName,
          start: u32(0),
          end: u32(RM),
          step: u32(1),
          body: [
            { kind: 'let', name: av, type: 'f32', init: arrayLoad(aTile, add(mul(add(ty, mul(iv, u32(thy))), u32(TK)), kkv), 'f32') },
            {
              kind: 'for',
              var: jName,
              start: u32(0),
              end: u32(RN),
              step: u32(1),
              body: [
                {
                  kind: 'array_store',
                  array: accName,
                  index: accIdx,
                  value: bin('add', arrayLoad(accName, accIdx, 'f32'), bin('mul', v(av, 'f32'), arrayLoad(bTile, add(mul(kkv, u32(TN)), add(tx, mul(jv, u32(thx)))), 'f32'))),
                },
              ],
            },
          ],
        },
      ],
    };
    if (isDirect) body.push(directKLoop());
    else body.push({
      kind: 'for',
      var: k0,
      start: u32(0),
      end: Ke,
      step: u32(TK),
      body: [
        stage(aTile, TK, TM * TK, aSlot, a.type.dtype, (r) => add(row0, r), (c) => add(kv, c), Me, Ke, aOff, Ke, viewAddress(a, true)),
        stage(bTile, TN, TK * TN, bSlot, b.type.dtype, (r) => add(kv, r), (c) => add(col0, c), Ke, Ne, bOff, Ne, viewAddress(b, false)),
        ...(fold?.stage ?? []),
        { kind: 'barrier' },
        ...(fold?.inner ?? [inner]),
        { kind: 'barrier' },
      ],
    });
    // Write back the thread's RM x RN outputs (strided by the thread grid, so stores coalesce).
    const wi = kb.fresh('i');
    const wj = kb.fresh('jj');
    const wiv = v(wi, 'u32');
    const wjv = v(wj, 'u32');
    const wb: Stmt[] = [];
    const orow = kb.let(wb, 'orow', add(row0, add(ty, mul(wiv, u32(thy)))));
    const ocol = kb.let(wb, 'ocol', add(col0, add(tx, mul(wjv, u32(thx)))));
    wb.push({
      kind: 'if',
      cond: and(lt(orow, Me), lt(ocol, Ne)),
      then: ((): Stmt[] => {
        const pre: Stmt[] = [];
        const value = fold === undefined ? arrayLoad(accName, add(mul(wiv, u32(RN)), wjv), 'f32') : fold.finish(pre, wiv, wjv);
        return [...pre, ...epilogueStore(add(oOff, add(mul(orow, Ne), ocol)), value)];
      })(),
      else: [],
    });
    body.push({
      kind: 'for',
      var: wi,
      start: u32(0),
      end: u32(RM),
      step: u32(1),
      body: [{ kind: 'for', var: wj, start: u32(0), end: u32(RN), step: u32(1), body: wb }],
    });
    // Norm fold: gamma (and beta) once per K tile per workgroup; A is not read again.
    const traffic = trafficFor(TM, TN, fold === undefined ? [] : [fold.paramBytes(sMul(batchS, sCeilDiv(Ms, TM), sCeilDiv(Ns, TN)), Ks)]);
    const grid: readonly [SizeExpr, SizeExpr, SizeExpr] = [sCeilDiv(Ns, TN), sCeilDiv(Ms, TM), batchS];
    this.finish(n, n.op, kb, body, [thx, thy, 1], grid, { kind: 'tiled_matmul', ...ms }, traffic);
  }
}

/** `host` whose `kb.input` gives one slot per graph value, however often a lambda is translated. */
function bindOnce(host: FusedHost, kb: KernelBuilder): FusedHost {
  const slots = new Map<number, number>();
  const input = (role: string, value: number, dtype: DType): number => {
    const known = slots.get(value);
    if (known !== undefined) return known;
    const slot = kb.input(role, value, dtype);
    slots.set(value, slot);
    return slot;
  };
  return { ...host, kb: { input, let: (out, prefix, init) => kb.let(out, prefix, init), fresh: (prefix) => kb.fresh(prefix) } };
}

/**
 * The tensor-core operands of a matmul: both f16 or both bf16, A contiguous along K and B along
 * N or (a transposed weight, `x @ transpose(w)`) along K, so 8-element copies are runs of memory;
 * no norm fold. Undefined: the scalar tiled path.
 */
function mmaOperands(g: Graph, n: Node, a: Node, b: Node): { readonly input: MatrixInput; readonly bLayout: MmaBLayout } | undefined {
  const t = a.type.dtype;
  if ((t !== 'f16' && t !== 'bf16') || b.type.dtype !== t) return undefined;
  if (n.op === 'fused_matmul' && normPrologueOf(n.attrs) !== undefined) return undefined;
  const aRank = a.type.shape.length;
  const bRank = b.type.shape.length;
  if (unitStrideAxis(g, a) !== aRank - 1) return undefined;
  const bAxis = unitStrideAxis(g, b);
  if (bAxis === bRank - 1) return { input: t, bLayout: 'k_by_n' };
  if (bAxis === bRank - 2) return { input: t, bLayout: 'n_by_k' };
  return undefined;
}

function sAddAll(xs: readonly SizeExpr[]): SizeExpr {
  return xs.length === 1 && xs[0] !== undefined ? xs[0] : { kind: 'add', args: xs };
}
