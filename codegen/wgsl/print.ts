// WGSL printer: one kernel IR kernel -> one WGSL compute shader, through the indent-aware
// writer and the spelling tables in ops.ts. Output is deterministic; every var is initialized
// (lavapipe keeps a loop-local uninitialized `var`'s previous value), infinities come from a
// runtime bitcast helper (a const-expression may not evaluate to inf), dims are a uniform struct.
import { NameScope, wgslReserved } from '../common/names.js';
import { Writer } from '../common/writer.js';
import { formatF32 } from '../common/float.js';
import {
  type Expr,
  type Kernel,
  type KernelSchedule,
  type ScalarType,
  type Stmt,
  assertNever,
  builtinIds,
  forEachExpr,
  kernelFeatures,
} from '../../src/kernel/ir.js';
import { printSize } from '../../src/kernel/to-size.js';
import { wgslBinary, wgslBuiltin, wgslMath, wgslSubgroup, wgslType, wgslUnary } from './ops.js';

export interface WgslOptions {
  /** Leave out the leading comment (name, locations, schedule, traffic); used to dedup kernels. */
  readonly header?: boolean;
}

/** Binding index of the dims uniform: right after the kernel's storage buffers. */
export function uniformBinding(k: Kernel): number {
  return k.uniforms.length === 0 ? -1 : k.buffers.length;
}

export function describeSchedule(s: KernelSchedule): string {
  switch (s.kind) {
    case 'map':
      return `map, ${s.workgroupSize} threads per workgroup, one element per thread`;
    case 'row':
      return `row, ${s.workgroupSize} threads per row, ${s.useSubgroups ? 'subgroup' : 'shared-memory tree'} reductions`;
    case 'tiled_matmul':
      return `tiled_matmul, tile ${s.tileRows}x${s.tileCols}x${s.tileK}, ${s.threadRows}x${s.threadCols} outputs per thread`;
    case 'flash_attention':
      return `flash_attention, ${s.tileRows} query rows x ${s.tileCols} keys per tile, ${s.lanes} lanes per row, ${s.useSubgroups ? 'subgroup' : 'workgroup-memory'} row reductions${s.splits > 1 ? `, ${s.splits} cache partitions` : ''}`;
    default:
      return assertNever(s);
  }
}

/** Comment text safe on one `//` line: control characters (C0, C1 with NEL U+0085, U+2028/9: all WGSL line breaks) become spaces. */
function commentText(s: string): string {
  return s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, ' ');
}

export function printWgsl(k: Kernel, opts: WgslOptions = {}): string {
  return new WgslPrinter(k).print(opts.header ?? true);
}

class WgslPrinter {
  private readonly scope = new NameScope(wgslReserved);
  private readonly names = new Map<string, string>();
  private readonly bufferNames: string[] = [];
  private readonly dimNames = new Map<string, string>();
  private usesErf = false;
  private usesInf = false;
  private usesNan = false;

  constructor(private readonly k: Kernel) {}

  private local(irName: string): string {
    let n = this.names.get(irName);
    if (n === undefined) {
      n = this.scope.claim(irName);
      this.names.set(irName, n);
    }
    return n;
  }

  print(header: boolean): string {
    const k = this.k;
    const w = new Writer();
    const features = kernelFeatures(k);
    forEachExpr(k.body, (e) => {
      if (e.kind === 'call' && e.fn === 'erf') this.usesErf = true;
      if (e.kind === 'lit' && (e.type === 'f32' || e.type === 'f16')) {
        if (Number.isNaN(e.value)) this.usesNan = true;
        else if (!Number.isFinite(Math.fround(e.value)) || (e.type === 'f16' && Math.abs(e.value) > 65504)) this.usesInf = true;
      }
    });
    if (header) {
      w.comment(commentText(`kernel ${k.name}: ${k.op}`));
      for (const loc of k.locs) w.comment(commentText(`from ${loc}`));
      w.comment(`schedule: ${describeSchedule(k.schedule)}`);
      w.comment(`workgroup: ${k.workgroupSize.join('x')}, grid: [${k.grid.map(printSize).join(', ')}]`);
      w.comment(`bytes read: ${printSize(k.traffic.bytesRead)}`);
      w.comment(`bytes written: ${printSize(k.traffic.bytesWritten)}`);
      w.comment(`flops: ${printSize(k.traffic.flops)}`);
    }
    if (features.usesF16) w.line('enable f16;');
    if (features.usesSubgroups) w.line('enable subgroups;');
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
      w.line(`@group(0) @binding(${b.slot}) var<storage, ${mode}> ${this.bufferNames[b.slot] ?? ''}: array<${wgslType[b.type]}>;`);
    }
    if (k.uniforms.length > 0) w.line(`@group(0) @binding(${uniformBinding(k)}) var<uniform> dims: Dims;`);
    for (const a of k.shared) w.line(`var<workgroup> ${this.local(a.name)}: array<${wgslType[a.type]}, ${a.length}>;`);
    w.line();
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
    const used = new Set<string>();
    forEachExpr(k.body, (e) => {
      if (e.kind === 'builtin') used.add(e.id);
    });
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

  private stmts(w: Writer, list: readonly Stmt[]): void {
    for (const s of list) this.stmt(w, s);
  }

  private stmt(w: Writer, s: Stmt): void {
    switch (s.kind) {
      case 'let':
        w.line(`let ${this.local(s.name)}: ${wgslType[s.type]} = ${this.expr(s.init, false)};`);
        return;
      case 'var':
        w.line(`var ${this.local(s.name)}: ${wgslType[s.type]} = ${this.expr(s.init, false)};`);
        return;
      case 'private_array': {
        const t = `array<${wgslType[s.type]}, ${s.length}>`;
        const isZero = s.init.kind === 'lit' && s.init.value === 0 && !Object.is(s.init.value, -0);
        const init = isZero ? `${t}()` : `${t}(${new Array<string>(s.length).fill(this.expr(s.init, false)).join(', ')})`;
        w.line(`var ${this.local(s.name)}: ${t} = ${init};`);
        return;
      }
      case 'assign':
        w.line(`${this.local(s.name)} = ${this.expr(s.value, false)};`);
        return;
      case 'store':
        w.line(`${this.bufferNames[s.slot] ?? ''}[${this.expr(s.index, false)}] = ${this.expr(s.value, false)};`);
        return;
      case 'array_store':
        w.line(`${this.local(s.array)}[${this.expr(s.index, false)}] = ${this.expr(s.value, false)};`);
        return;
      case 'for': {
        const i = this.local(s.var);
        const step = s.step.kind === 'lit' && s.step.value === 1 ? `${i}++` : `${i} += ${this.expr(s.step, false)}`;
        w.open(`for (var ${i}: u32 = ${this.expr(s.start, false)}; ${i} < ${this.expr(s.end, false)}; ${step})`);
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
        w.line('workgroupBarrier();');
        return;
      case 'comment':
        w.comment(commentText(s.text));
        return;
      default:
        assertNever(s);
    }
  }

  /** `nested`: the expression is an operand of an operator, so binary/unary forms get parentheses. */
  private expr(e: Expr, nested: boolean): string {
    const wrap = (s: string): string => (nested ? `(${s})` : s);
    switch (e.kind) {
      case 'lit':
        return this.literal(e.type, e.value, nested);
      case 'var':
        return this.local(e.name);
      case 'builtin': {
        const b = wgslBuiltin[e.id];
        return b.isVector ? `${b.name}.${'xyz'[e.axis] ?? 'x'}` : b.name;
      }
      case 'uniform':
        return `dims.${this.dimNames.get(e.dim) ?? e.dim}`;
      case 'load':
        return `${this.bufferNames[e.slot] ?? ''}[${this.expr(e.index, false)}]`;
      case 'array_load':
        return `${this.local(e.array)}[${this.expr(e.index, false)}]`;
      case 'unary':
        return `${wgslUnary[e.op]}${this.expr(e.arg, true)}`;
      case 'binary':
        return wrap(`${this.expr(e.a, true)} ${wgslBinary[e.op]} ${this.expr(e.b, true)}`);
      case 'call':
        return wgslMath[e.fn](e.args.map((a) => this.expr(a, false)), e.type);
      case 'select':
        return `select(${this.expr(e.ifFalse, false)}, ${this.expr(e.ifTrue, false)}, ${this.expr(e.cond, false)})`;
      case 'cast':
        return `${wgslType[e.to]}(${this.expr(e.arg, false)})`;
      case 'subgroup':
        return `${wgslSubgroup[e.op]}(${this.expr(e.arg, false)})`;
      default:
        return assertNever(e);
    }
  }

  private literal(type: ScalarType, value: number, nested: boolean): string {
    const neg = (s: string): string => (nested ? `(${s})` : s);
    switch (type) {
      case 'bool':
        return value !== 0 ? 'true' : 'false';
      case 'u32':
        if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new Error(`internal: bad u32 literal ${value}`);
        return `${value}u`;
      case 'i32':
        if (!Number.isInteger(value) || value < -0x80000000 || value > 0x7fffffff) throw new Error(`internal: bad i32 literal ${value}`);
        return value < 0 ? neg(`${value}i`) : `${value}i`;
      case 'f32':
      case 'f16': {
        let s: string;
        if (Number.isNaN(value)) s = 'tfc_nan()';
        else if (!Number.isFinite(Math.fround(value)) || (type === 'f16' && Math.abs(value) > 65504)) s = value < 0 ? 'tfc_neg_inf()' : '-tfc_neg_inf()';
        else s = `${formatF32(value)}f`;
        if (type === 'f16') return `f16(${s})`;
        return s.startsWith('-') ? neg(s) : s;
      }
      default:
        return assertNever(type);
    }
  }
}
