// CUDA printer: one kernel IR kernel -> one `extern "C" __global__` function, through the
// indent-aware writer and the spelling tables in ops.ts; the same IR the WGSL printer prints.
// Signature: the global buffers in slot order (`const T* __restrict__` when read-only), then one
// `unsigned int` per dim in `k.uniforms` order (`dim_<name>`), all passed by value, so a host
// launches with cuLaunchKernel(params = [&buf0, ..., &dim0, ...]). Shared arrays are static
// `__shared__`; subgroup ops are full-warp shuffles (warp = 32, cudaLimits.subgroupSize).
import { cudaReserved } from '../common/names.js';
import { Writer } from '../common/writer.js';
import { CStylePrinter, usedBuiltins } from '../common/c-style.js';
import {
  type BinaryOp,
  type BuiltinId,
  type Expr,
  type Kernel,
  type MathFn,
  type MatrixStmt,
  type ScalarType,
  type Stmt,
  type SubgroupOp,
  type UnaryOp,
  assertNever,
  builtinIds,
  exprType,
  forEachStmt,
  kernelFeatures,
  usesMatrixStmts,
} from '../../src/kernel/ir/ir.js';
import { cudaBinary, cudaBinaryIsCall, cudaBuiltin, cudaCast, cudaMath, cudaSubgroup, cudaType, cudaUnary } from './ops.js';
import { cudaMmaHelpers } from './mma.js';

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

/** The prelude, plus the tensor-core wrappers (codegen/cuda/mma.ts) when a kernel needs them. */
function preludeFor(kernels: readonly Kernel[]): string {
  return kernels.some(usesMatrixStmts) ? `${cudaPrelude()}\n${cudaMmaHelpers()}` : cudaPrelude();
}

export function printCuda(k: Kernel, opts: CudaOptions = {}): string {
  const body = new CudaPrinter(k).print(opts.header ?? true);
  return (opts.prelude ?? true) ? `${preludeFor([k])}\n${body}` : body;
}

/** Several kernels as one translation unit: the prelude once, then each kernel. */
export function printCudaModule(kernels: readonly Kernel[]): string {
  return [preludeFor(kernels), ...kernels.map((k) => printCuda(k, { prelude: false }))].join('\n');
}

class CudaPrinter extends CStylePrinter {
  constructor(k: Kernel) {
    super(k, cudaReserved);
  }

  print(header: boolean): string {
    const k = this.k;
    const w = new Writer();
    const threads = k.workgroupSize[0] * k.workgroupSize[1] * k.workgroupSize[2];
    if (kernelFeatures(k).usesSubgroups && threads % cudaWarpSize !== 0) {
      // Full-warp shuffles need every lane present; the schedule must give whole warps.
      throw new Error(`internal: kernel ${k.name} uses subgroup ops with ${threads} threads per block (not a multiple of ${cudaWarpSize})`);
    }
    if (header) this.header(w);
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
    // Tiles written by async copies: 16-byte aligned (cp.async moves 16 bytes to a 16-byte boundary).
    const aligned = new Set<string>();
    forEachStmt(k.body, (s) => {
      if (s.kind === 'async_copy') aligned.add(s.array);
    });
    for (const a of k.shared) w.line(`__shared__ ${aligned.has(a.name) ? '__align__(16) ' : ''}${cudaType[a.type]} ${this.local(a.name)}[${a.length}];`);
    const used = usedBuiltins(k);
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

  // ---- spellings ----

  protected readonly groupLabel = 'block';
  protected readonly barrier = '__syncthreads();';
  protected readonly parenthesizeUnary = true;
  protected readonly nanLiteral = 'NAN';

  /** Also no line splicing: a backslash at the end of a `//` line would continue the comment. */
  protected override commentText(s: string): string {
    return super.commentText(s).replace(/\\/g, '/');
  }

  protected declare(kind: 'let' | 'var', type: ScalarType, name: string, init: string): string {
    return `${kind === 'let' ? 'const ' : ''}${cudaType[type]} ${name} = ${init}`;
  }

  protected declareArray(type: ScalarType, name: string, length: number, elems: readonly string[] | undefined): string {
    return `${cudaType[type]} ${name}[${length}] = {${elems === undefined ? '' : elems.join(', ')}}`;
  }

  protected loopVar(name: string): string {
    return `unsigned int ${name}`;
  }

  protected builtin(id: BuiltinId, axis: number): string {
    const b = cudaBuiltin[id];
    return b.kind === 'vector' ? b.axis('xyz'[axis] ?? 'x') : b.name;
  }

  protected uniform(dim: string): string {
    return this.dimNames.get(dim) ?? `dim_${dim}`;
  }

  protected unaryOp(op: UnaryOp): string {
    return cudaUnary[op];
  }

  protected binary(op: BinaryOp, a: string, b: string, operandType: ScalarType): string {
    return cudaBinary[op](a, b, operandType);
  }

  protected override binaryIsCall(op: BinaryOp, operandType: ScalarType): boolean {
    return cudaBinaryIsCall(op, operandType);
  }

  protected call(fn: MathFn, args: readonly string[], type: ScalarType): string {
    return cudaMath[fn](args, type);
  }

  protected select(cond: Expr, ifTrue: Expr, ifFalse: Expr, nested: boolean): string {
    const text = `${this.expr(cond, true)} ? ${this.expr(ifTrue, true)} : ${this.expr(ifFalse, true)}`;
    return nested ? `(${text})` : text;
  }

  /** Operand parenthesized unless an f16 conversion call wraps it. */
  protected cast(to: ScalarType, arg: Expr): string {
    const from = exprType(arg);
    return cudaCast(to, from, this.expr(arg, to !== 'f16' && from !== 'f16'));
  }

  protected subgroupOp(op: SubgroupOp): string {
    return cudaSubgroup[op];
  }

  protected subgroupShuffle(_op: SubgroupOp, arg: Expr, lane: Expr): string {
    return `__shfl_sync(0xffffffffu, ${this.expr(arg, false)}, ${this.expr(lane, false)})`;
  }

  /** A float4 load (the buffer is 16-byte aligned: cudaMalloc, and vector slots start at element 0); other types load element by element. */
  protected loadVec(w: Writer, s: Extract<Stmt, { kind: 'load_vec' }>): void {
    const buf = this.bufferNames[s.slot] ?? '';
    const index = this.expr(s.index, true);
    if (s.type === 'f32' && s.names.length === 4) {
      const t = this.scope.claim(`${s.names[0] ?? 'v'}_vec`);
      w.line(`const float4 ${t} = reinterpret_cast<const float4*>(${buf})[${index}];`);
      const lanes = ['x', 'y', 'z', 'w'];
      s.names.forEach((n, i) => w.line(`${this.declare('let', s.type, this.local(n), `${t}.${lanes[i] ?? 'x'}`)};`));
      return;
    }
    s.names.forEach((n, i) => w.line(`${this.declare('let', s.type, this.local(n), `${buf}[${index} * ${s.names.length}u + ${i}u]`)};`));
  }

  /** -2147483648 is not a literal in C++ (2147483648 does not fit int). */
  protected i32Literal(value: number): string {
    return value === -0x80000000 ? '-2147483647 - 1' : `${value}`;
  }

  protected infLiteral(negative: boolean): string {
    return negative ? '-INFINITY' : 'INFINITY';
  }

  protected f16Literal(s: string): string {
    return `__float2half(${s})`;
  }

  /** The wrappers of codegen/cuda/mma.ts; tiles are packed u32 arrays addressed in 16-bit elements. */
  protected matrixStmt(w: Writer, s: MatrixStmt): void {
    const halves = (array: string, offset: Expr, isConst: boolean): string =>
      `reinterpret_cast<${isConst ? 'const ' : ''}unsigned short*>(${this.local(array)}) + ${this.expr(offset, true)}`;
    switch (s.kind) {
      case 'mma':
        w.line(`tfc_mma_tile_${s.input}${s.bLayout === 'n_by_k' ? '_bt' : ''}(${this.local(s.acc)} + ${s.accOffset}, ${halves(s.a.array, s.a.offset, true)}, ${s.a.stride}u, ${halves(s.b.array, s.b.offset, true)}, ${s.b.stride}u);`);
        return;
      case 'mma_regs':
        w.line(`tfc_mma_regs_${s.input}${s.bLayout === 'n_by_k' ? '_bt' : ''}(${this.local(s.acc)} + ${s.accOffset}, ${this.local(s.aRegs)} + ${s.aOffset}, ${halves(s.b.array, s.b.offset, true)}, ${s.b.stride}u);`);
        return;
      case 'async_copy': {
        const from = this.k.buffers[s.slot]?.type;
        const fn = from === 'f16' && s.input === 'f16' ? 'tfc_copy8_f16' : from === 'f32' ? `tfc_copy8_f32_${s.input}` : undefined;
        if (fn === undefined) throw new Error(`internal: kernel ${this.k.name}: async_copy of ${from ?? 'a missing buffer'} into ${s.input} tiles`);
        w.line(`${fn}(${halves(s.array, s.arrayOffset, false)}, ${this.bufferNames[s.slot] ?? ''} + ${this.expr(s.index, true)}, ${this.expr(s.count, false)});`);
        return;
      }
      case 'async_commit':
        w.line('tfc_cp_async_commit();');
        return;
      case 'async_wait':
        w.line(`tfc_cp_async_wait<${s.pending}>();`);
        return;
      default:
        assertNever(s);
    }
  }
}
