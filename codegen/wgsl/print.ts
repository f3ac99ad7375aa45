// WGSL printer: one kernel IR kernel -> one WGSL compute shader, through the indent-aware
// writer and the spelling tables in ops.ts. Output is deterministic; every var is initialized
// (lavapipe keeps a loop-local uninitialized `var`'s previous value), infinities come from a
// runtime bitcast helper (a const-expression may not evaluate to inf), dims are a uniform struct.
// i8 buffers are arrays of u32 words holding four elements each (byte i % 4 of word i / 4, the
// buffer's byte i): read through a helper that sign-extends the byte, written through one that
// clears and sets it with atomicAnd/atomicOr (the binding is array<atomic<u32>>), since
// neighbouring invocations write the other bytes of the same word.
// Statement and expression walking live in ../common/c-style.ts; this file holds the module layout and spellings.
import { NameScope } from '../../src/base/names.js';
import { wgslReserved } from '../common/names.js';
import { Writer } from '../common/writer.js';
import { CStylePrinter, describeSchedule, isInfLiteral, usedBuiltins } from '../common/c-style.js';
import {
  type BinaryOp,
  type BuiltinId,
  type Expr,
  type Kernel,
  type MathFn,
  type MatrixStmt,
  type ScalarType,
  type GlobalBuffer,
  type Stmt,
  type SubgroupOp,
  type UnaryOp,
  builtinIds,
  exprType,
  forEachExpr,
  forEachStmt,
  kernelFeatures,
  usesMatrixStmts,
} from '../../src/kernel/ir/ir.js';
import { wgslBinary, wgslBuiltin, wgslMath, wgslSubgroup, wgslType, wgslUnary } from './ops.js';

type LoadVec = Extract<Stmt, { kind: 'load_vec' }>;

export interface WgslOptions {
  /** Leave out the leading comment (name, locations, schedule, traffic); used to dedup kernels. */
  readonly header?: boolean;
}

/** Binding index of the dims uniform: right after the kernel's storage buffers. */
export function uniformBinding(k: Kernel): number {
  return k.uniforms.length === 0 ? -1 : k.buffers.length;
}

export { describeSchedule };

export function printWgsl(k: Kernel, opts: WgslOptions = {}): string {
  // Matrix intrinsics come only from CUDA schedules (kernel/schedule/schedule.ts: `tensorCores`); reaching here is a bug.
  if (usesMatrixStmts(k)) throw new Error(`internal: kernel ${k.name} uses matrix intrinsics (mma/async_copy), which WGSL cannot print; only CUDA schedules with tensorCores may choose them`);
  return new WgslPrinter(k).print(opts.header ?? true);
}

class WgslPrinter extends CStylePrinter {
  private usesErf = false;
  private usesInf = false;
  private usesNan = false;
  /** Helper names of the i8 slots (load, store). */
  private readonly i8Load = new Map<number, string>();
  private readonly i8Store = new Map<number, string>();

  constructor(k: Kernel) {
    super(k, wgslReserved);
  }

  print(header: boolean): string {
    const k = this.k;
    const w = new Writer();
    const features = kernelFeatures(k);
    forEachExpr(k.body, (e) => {
      if (e.kind === 'call' && e.fn === 'erf') this.usesErf = true;
      if (e.kind === 'lit' && (e.type === 'f32' || e.type === 'f16')) {
        if (Number.isNaN(e.value)) this.usesNan = true;
        else if (isInfLiteral(e.type, e.value)) this.usesInf = true;
      }
    });
    if (header) this.header(w);
    if (features.usesF16) w.line('enable f16;');
    if (features.usesSubgroups) w.line('enable subgroups;');
    // Subgroup operations under a branch the lowering keeps subgroup-uniform (not provably so to Tint).
    let subgroupBranches = false;
    forEachStmt(k.body, (s) => {
      if (s.kind === 'if' && s.uniformity === 'subgroup') subgroupBranches = true;
    });
    if (features.usesSubgroups && subgroupBranches) w.line('diagnostic(off, subgroup_uniformity);');
    if (features.usesF16 || features.usesSubgroups) w.line();

    // Module-scope names first, in slot order, so they are stable.
    for (const b of k.buffers) this.bufferNames[b.slot] = this.scope.claim(b.role);
    for (const d of k.uniforms) this.dimNames.set(d, new NameScope(wgslReserved).claim(d));
    for (const a of k.shared) this.local(a.name);

    if (k.uniforms.length > 0) {
      w.open('struct Dims');
      for (const d of k.uniforms) w.line(`${this.dimNames.get(d) ?? d}: u32,`);
      w.close();
      w.line();
    }
    for (const b of k.buffers) {
      const mode = b.access === 'read' ? 'read' : 'read_write';
      const scalar = b.type !== 'i8' ? wgslType[b.type] : b.access === 'read' ? 'u32' : 'atomic<u32>';
      const element = b.vector === undefined ? scalar : `vec${b.vector}<${scalar}>`;
      w.line(`@group(0) @binding(${b.slot}) var<storage, ${mode}> ${this.bufferNames[b.slot] ?? ''}: array<${element}>;`);
    }
    if (k.uniforms.length > 0) w.line(`@group(0) @binding(${uniformBinding(k)}) var<uniform> dims: Dims;`);
    for (const a of k.shared) w.line(`var<workgroup> ${this.local(a.name)}: array<${wgslType[a.type]}, ${a.length}>;`);
    w.line();
    for (const b of k.buffers) if (b.type === 'i8') this.printI8Access(w, b);
    if (this.usesErf) this.printErf(w);
    if (this.usesInf) {
      // Not a const: a const-expression that evaluates to an infinity is a shader-creation error.
      w.open('fn tfc_neg_inf() -> f32');
      w.line('var bits: u32 = 0xff800000u;');
      w.line('return bitcast<f32>(bits);');
      w.close();
      w.line();
    }
    if (this.usesNan) {
      w.open('fn tfc_nan() -> f32');
      w.line('var bits: u32 = 0x7fc00000u;');
      w.line('return bitcast<f32>(bits);');
      w.close();
      w.line();
    }
    const used = usedBuiltins(k);
    const params = builtinIds
      .filter((id) => used.has(id))
      .map((id) => {
        const b = wgslBuiltin[id];
        return `@builtin(${b.attr}) ${b.name}: ${b.type}`;
      });
    w.line(`@compute @workgroup_size(${k.workgroupSize.join(', ')})`);
    w.open(`fn main(${params.join(', ')})`);
    this.stmts(w, k.body);
    w.close();
    return w.toString();
  }

  /** The load (and, when writable, store) helper of an i8 buffer; names claimed here, before any local. */
  private printI8Access(w: Writer, b: GlobalBuffer): void {
    const buf = this.bufferNames[b.slot] ?? '';
    const load = this.scope.claim(`${buf}_i8`);
    this.i8Load.set(b.slot, load);
    const word = b.access === 'read' ? `${buf}[i >> 2u]` : `atomicLoad(&${buf}[i >> 2u])`;
    w.open(`fn ${load}(i: u32) -> i32`);
    w.line(`return extractBits(bitcast<i32>(${word}), (i & 3u) * 8u, 8u);`);
    w.close();
    w.line();
    if (b.access === 'read') return;
    const store = this.scope.claim(`${buf}_set_i8`);
    this.i8Store.set(b.slot, store);
    w.open(`fn ${store}(i: u32, x: i32)`);
    w.line('let shift: u32 = (i & 3u) * 8u;');
    w.line(`atomicAnd(&${buf}[i >> 2u], ~(0xffu << shift));`);
    w.line(`atomicOr(&${buf}[i >> 2u], (bitcast<u32>(x) & 0xffu) << shift);`);
    w.close();
    w.line();
  }

  protected override loadText(slot: number, index: string): string {
    const f = this.i8Load.get(slot);
    return f === undefined ? super.loadText(slot, index) : `${f}(${index})`;
  }

  protected override storeText(slot: number, index: string, value: string): string {
    const f = this.i8Store.get(slot);
    return f === undefined ? super.storeText(slot, index, value) : `${f}(${index}, ${value})`;
  }

  private printErf(w: Writer): void {
    w.comment('erf(x), Abramowitz & Stegun 7.1.26: |error| <= 1.5e-7');
    w.open('fn tfc_erf(x: f32) -> f32');
    w.line('let a: f32 = abs(x);');
    w.line('let t: f32 = 1.0f / (1.0f + 0.3275911f * a);');
    w.line('let poly: f32 = ((((1.0614054f * t - 1.4531521f) * t + 1.4214138f) * t - 0.28449672f) * t + 0.2548296f) * t;');
    w.line('let y: f32 = 1.0f - poly * exp(-a * a);');
    w.line('return select(-y, y, x >= 0.0f);');
    w.close();
    w.line();
  }

  // ---- spellings ----

  protected readonly groupLabel = 'workgroup';
  protected readonly barrier = 'workgroupBarrier();';
  protected readonly parenthesizeUnary = false;
  protected readonly nanLiteral = 'tfc_nan()';

  protected declare(kind: 'let' | 'var', type: ScalarType, name: string, init: string): string {
    return `${kind} ${name}: ${wgslType[type]} = ${init}`;
  }

  protected declareArray(type: ScalarType, name: string, length: number, elems: readonly string[] | undefined): string {
    const t = `array<${wgslType[type]}, ${length}>`;
    return `var ${name}: ${t} = ${t}(${elems === undefined ? '' : elems.join(', ')})`;
  }

  protected loopVar(name: string): string {
    return `var ${name}: u32`;
  }

  protected builtin(id: BuiltinId, axis: number): string {
    const b = wgslBuiltin[id];
    return b.isVector ? `${b.name}.${'xyz'[axis] ?? 'x'}` : b.name;
  }

  protected uniform(dim: string): string {
    return `dims.${this.dimNames.get(dim) ?? dim}`;
  }

  protected unaryOp(op: UnaryOp): string {
    return wgslUnary[op];
  }

  protected binary(op: BinaryOp, a: string, b: string): string {
    return `${a} ${wgslBinary[op]} ${b}`;
  }

  protected call(fn: MathFn, args: readonly string[], type: ScalarType): string {
    return wgslMath[fn](args, type);
  }

  protected select(cond: Expr, ifTrue: Expr, ifFalse: Expr): string {
    return `select(${this.expr(ifFalse, false)}, ${this.expr(ifTrue, false)}, ${this.expr(cond, false)})`;
  }

  /** To i8: truncate toward zero (WGSL's float -> i32 conversion clamps), then saturate to -128..127. */
  protected cast(to: ScalarType, arg: Expr): string {
    const a = this.expr(arg, false);
    if (to !== 'i8') return `${wgslType[to]}(${a})`;
    const from = exprType(arg);
    if (from === 'u32') return `i32(min(${a}, 127u))`;
    if (from === 'bool') return `i32(${a})`;
    return `clamp(${from === 'i32' || from === 'i8' ? a : `i32(${a})`}, -128i, 127i)`;
  }

  protected subgroupOp(op: SubgroupOp): string {
    return wgslSubgroup[op];
  }

  protected subgroupShuffle(op: SubgroupOp, arg: Expr, lane: Expr): string {
    return `${wgslSubgroup[op]}(${this.expr(arg, false)}, ${this.expr(lane, false)})`;
  }

  /** `let t = buf[i];` then one `let` per element (the slot is declared `array<vec4<T>>`). */
  protected loadVec(w: Writer, s: LoadVec): void {
    const t = this.scope.claim(`${s.names[0] ?? 'v'}_vec`);
    w.line(`let ${t} = ${this.bufferNames[s.slot] ?? ''}[${this.expr(s.index, false)}];`);
    s.names.forEach((n, i) => w.line(`${this.declare('let', s.type, this.local(n), `${t}[${i}]`)};`));
  }

  protected i32Literal(value: number): string {
    return `${value}i`;
  }

  protected infLiteral(negative: boolean): string {
    return negative ? 'tfc_neg_inf()' : '-tfc_neg_inf()';
  }

  protected f16Literal(s: string): string {
    return `f16(${s})`;
  }

  protected matrixStmt(_w: Writer, s: MatrixStmt): void {
    throw new Error(`internal: WGSL has no ${s.kind} (kernel ${this.k.name}); only CUDA schedules with tensorCores emit matrix intrinsics`);
  }
}
