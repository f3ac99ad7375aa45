// CUDA printer: one kernel IR kernel -> one `extern "C" __global__` function, through the
// indent-aware writer and the spelling tables in ops.ts; the same IR the WGSL printer prints.
// Signature: the global buffers in slot order (`const T* __restrict__` when read-only), then one
// `unsigned int` per dim in `k.uniforms` order (`dim_<name>`), all passed by value, so a host
// launches with cuLaunchKernel(params = [&buf0, ..., &dim0, ...]). Shared arrays are static
// `__shared__`; subgroup ops are full-warp shuffles (warp = 32, cudaLimits.subgroupSize).
import { NameScope, cudaReserved } from '../common/names.js';
import { Writer } from '../common/writer.js';
import { formatF32 } from '../common/float.js';
import { type Expr, type Kernel, type ScalarType, type Stmt, assertNever, builtinIds, exprType, forEachExpr, kernelFeatures } from '../../src/kernel/ir.js';
import { printSize } from '../../src/kernel/to-size.js';
import { describeSchedule } from '../wgsl/print.js';
import { cudaBinary, cudaBinaryIsCall, cudaBuiltin, cudaCast, cudaMath, cudaSubgroup, cudaType, cudaUnary } from './ops.js';

export interface CudaOptions {
  /** Leave out the leading comment (name, locations, schedule, traffic). */
  readonly header?: boolean;
  /** Leave out the prelude (includes and warp helpers), e.g. when batching kernels into one file. */
  readonly prelude?: boolean;
}

/** Lanes per warp: the subgroup size the CUDA prelude's collectives assume. */
export const cudaWarpSize = 32;

/**
 * Includes and helpers every kernel may use, guarded so that several kernels concatenate into
 * one translation unit. Under `TFC_CUDA_EMU` (codegen/cuda/emu/cuda_emu.h, g++) the CUDA headers
 * are replaced by the emulator, which defines the same names.
 */
export function cudaPrelude(): string {
  const w = new Writer();
  w.line('#ifndef TFC_CUDA_PRELUDE');
  w.line('#define TFC_CUDA_PRELUDE');
  w.line('#ifndef TFC_CUDA_EMU');
  w.line('#include <cuda_fp16.h>');
  w.line('#include <math_constants.h>');
  w.line('#endif');
  w.comment('Warp collectives over all 32 lanes (butterfly: every lane gets the result).');
  w.line('template <typename T>');
  w.open('__device__ __forceinline__ T tfc_warp_sum(T x)');
  w.line('for (int offset = 16; offset > 0; offset >>= 1) x = x + __shfl_xor_sync(0xffffffffu, x, offset);');
  w.line('return x;');
  w.close();
  w.open('__device__ __forceinline__ float tfc_warp_max(float x)');
  w.line('for (int offset = 16; offset > 0; offset >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, offset));');
  w.line('return x;');
  w.close();
  w.open('__device__ __forceinline__ __half tfc_warp_max(__half x)');
  w.line('return __float2half(tfc_warp_max(__half2float(x)));');
  w.close();
  w.open('__device__ __forceinline__ int tfc_warp_max(int x)');
  w.line('for (int offset = 16; offset > 0; offset >>= 1) x = max(x, __shfl_xor_sync(0xffffffffu, x, offset));');
  w.line('return x;');
  w.close();
  w.open('__device__ __forceinline__ unsigned int tfc_warp_max(unsigned int x)');
  w.line('for (int offset = 16; offset > 0; offset >>= 1) x = max(x, __shfl_xor_sync(0xffffffffu, x, offset));');
  w.line('return x;');
  w.close();
  w.line('template <typename T>');
  w.open('__device__ __forceinline__ T tfc_warp_broadcast_first(T x)');
  w.line('return __shfl_sync(0xffffffffu, x, 0);');
  w.close();
  w.line('#endif');
  return w.toString();
}

export function printCuda(k: Kernel, opts: CudaOptions = {}): string {
  const body = new CudaPrinter(k).print(opts.header ?? true);
  return (opts.prelude ?? true) ? `${cudaPrelude()}\n${body}` : body;
}

/** Several kernels as one translation unit: the prelude once, then each kernel. */
export function printCudaModule(kernels: readonly Kernel[]): string {
  return [cudaPrelude(), ...kernels.map((k) => printCuda(k, { prelude: false }))].join('\n');
}

/** Comment text safe on one `//` line: control characters become spaces, no line splicing. */
function commentText(s: string): string {
  return s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, ' ').replace(/\\/g, '/');
}

class CudaPrinter {
  private readonly scope = new NameScope(cudaReserved);
  private readonly names = new Map<string, string>();
  private readonly bufferNames: string[] = [];
  private readonly dimNames = new Map<string, string>();

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
    const threads = k.workgroupSize[0] * k.workgroupSize[1] * k.workgroupSize[2];
    if (kernelFeatures(k).usesSubgroups && threads % cudaWarpSize !== 0) {
      // Full-warp shuffles need every lane present; the schedule must give whole warps.
      throw new Error(`internal: kernel ${k.name} uses subgroup ops with ${threads} threads per block (not a multiple of ${cudaWarpSize})`);
    }
    if (header) {
      w.comment(commentText(`kernel ${k.name}: ${k.op}`));
      for (const loc of k.locs) w.comment(commentText(`from ${loc}`));
      w.comment(`schedule: ${describeSchedule(k.schedule)}`);
      w.comment(`block: ${k.workgroupSize.join('x')}, grid: [${k.grid.map(printSize).join(', ')}]`);
      w.comment(`bytes read: ${printSize(k.traffic.bytesRead)}`);
      w.comment(`bytes written: ${printSize(k.traffic.bytesWritten)}`);
      w.comment(`flops: ${printSize(k.traffic.flops)}`);
    }
    // Names in a fixed order: kernel, buffers by slot, dims, shared arrays, then locals as met.
    const kernelName = this.scope.claim(k.name);
    for (const b of k.buffers) this.bufferNames[b.slot] = this.scope.claim(b.role);
    for (const d of k.uniforms) this.dimNames.set(d, this.scope.claim(`dim_${d}`));
    for (const a of k.shared) this.local(a.name);

    const params = [
      ...k.buffers.map((b) => `${b.access === 'read' ? 'const ' : ''}${cudaType[b.type]}* __restrict__ ${this.bufferNames[b.slot] ?? ''}`),
      ...k.uniforms.map((d) => `const unsigned int ${this.dimNames.get(d) ?? d}`),
    ];
    // (threads, 1): at least one block per SM, so ptxas may use the whole register file for one
    // block. With the first argument alone, ptxas for sm_90a aims at two 1024-thread blocks per SM
    // (32 registers) and spilled in the 1024-thread attention kernels.
    w.open(`extern "C" __global__ void __launch_bounds__(${threads}, 1) ${kernelName}(${params.join(', ')})`);
    for (const a of k.shared) w.line(`__shared__ ${cudaType[a.type]} ${this.local(a.name)}[${a.length}];`);
    const used = new Set<string>();
    forEachExpr(k.body, (e) => {
      if (e.kind === 'builtin') used.add(e.id);
    });
    for (const id of builtinIds) {
      const b = cudaBuiltin[id];
      if (b.kind === 'scalar' && used.has(id)) for (const n of b.needs) used.add(n);
    }
    for (const id of builtinIds) {
      const b = cudaBuiltin[id];
      if (b.kind === 'scalar' && used.has(id)) w.line(`const unsigned int ${b.name} = ${b.decl};`);
    }
    this.stmts(w, k.body);
    w.close();
    return w.toString();
  }

  private stmts(w: Writer, list: readonly Stmt[]): void {
    for (const s of list) this.stmt(w, s);
  }

  private stmt(w: Writer, s: Stmt): void {
    switch (s.kind) {
      case 'let':
        w.line(`const ${cudaType[s.type]} ${this.local(s.name)} = ${this.expr(s.init, false)};`);
        return;
      case 'var':
        w.line(`${cudaType[s.type]} ${this.local(s.name)} = ${this.expr(s.init, false)};`);
        return;
      case 'private_array': {
        const isZero = s.init.kind === 'lit' && s.init.value === 0 && !Object.is(s.init.value, -0);
        const init = isZero ? '{}' : `{${new Array<string>(s.length).fill(this.expr(s.init, false)).join(', ')}}`;
        w.line(`${cudaType[s.type]} ${this.local(s.name)}[${s.length}] = ${init};`);
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
        w.open(`for (unsigned int ${i} = ${this.expr(s.start, false)}; ${i} < ${this.expr(s.end, false)}; ${step})`);
        this.stmts(w, s.body);
        w.close();
        return;
      }
      case 'if': {
        w.open(`if (${this.expr(s.cond, false)})`);
        this.stmts(w, s.then);
        let rest = s.else;
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
        w.line('__syncthreads();');
        return;
      case 'comment':
        w.comment(commentText(s.text));
        return;
      default:
        assertNever(s);
    }
  }

  /** `nested`: the expression is an operand of an operator, so operator forms get parentheses. */
  private expr(e: Expr, nested: boolean): string {
    const wrap = (s: string): string => (nested ? `(${s})` : s);
    switch (e.kind) {
      case 'lit':
        return this.literal(e.type, e.value, nested);
      case 'var':
        return this.local(e.name);
      case 'builtin': {
        const b = cudaBuiltin[e.id];
        return b.kind === 'vector' ? b.axis('xyz'[e.axis] ?? 'x') : b.name;
      }
      case 'uniform':
        return this.dimNames.get(e.dim) ?? `dim_${e.dim}`;
      case 'load':
        return `${this.bufferNames[e.slot] ?? ''}[${this.expr(e.index, false)}]`;
      case 'array_load':
        return `${this.local(e.array)}[${this.expr(e.index, false)}]`;
      case 'unary':
        return wrap(`${cudaUnary[e.op]}${this.expr(e.arg, true)}`);
      case 'binary': {
        const t = exprType(e.a);
        const text = cudaBinary[e.op](this.expr(e.a, true), this.expr(e.b, true), t);
        return cudaBinaryIsCall(e.op, t) ? text : wrap(text);
      }
      case 'call':
        return cudaMath[e.fn](e.args.map((a) => this.expr(a, false)), e.type);
      case 'select':
        return wrap(`${this.expr(e.cond, true)} ? ${this.expr(e.ifTrue, true)} : ${this.expr(e.ifFalse, true)}`);
      case 'cast':
        return cudaCast(e.to, exprType(e.arg), this.expr(e.arg, e.to !== 'f16' && exprType(e.arg) !== 'f16'));
      case 'subgroup':
        return `${cudaSubgroup[e.op]}(${this.expr(e.arg, false)})`;
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
        // -2147483648 is not a literal in C++ (2147483648 does not fit int).
        if (value === -0x80000000) return neg('-2147483647 - 1');
        return value < 0 ? neg(`${value}`) : `${value}`;
      case 'f32':
      case 'f16': {
        let s: string;
        if (Number.isNaN(value)) s = 'NAN';
        else if (!Number.isFinite(Math.fround(value)) || (type === 'f16' && Math.abs(value) > 65504)) s = value < 0 ? '-INFINITY' : 'INFINITY';
        else s = `${formatF32(value)}f`;
        if (type === 'f16') return `__float2half(${s})`;
        return s.startsWith('-') ? neg(s) : s;
      }
      default:
        return assertNever(type);
    }
  }
}
