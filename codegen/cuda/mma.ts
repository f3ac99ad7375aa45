// The tensor-core wrappers generated CUDA kernels call for the kernel IR's matrix statements
// (mma, async_copy/commit/wait; src/kernel/ir/ir.ts): printed once per translation unit, guarded,
// after the prelude, only when a kernel uses them. Under nvcc they are inline PTX (sm_80+);
// under g++ with codegen/cuda/emu/cuda_emu.h the four PTX primitives (tfc_lane_id,
// tfc_mma_m16n8k16_{f16,bf16}_f32, tfc_cp_async_16/commit/wait) are emulated and the rest of this
// text, the fragment layouts included, runs unchanged.
import { Writer } from '../common/writer.js';

/**
 * API (all `__device__`, every pointer to shared memory is 16-bit elements in a packed array):
 * - `tfc_mma_m16n8k16_f16_f32(float d[4], const unsigned a[4], const unsigned b[2])` and `_bf16_f32`:
 *   one `mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16}.{f16,bf16}.f32`, d += A * B (warp-wide).
 * - `tfc_mma_tile_f16(acc, a, lda, b, ldb)` / `tfc_mma_tile_bf16`: loads this lane's A fragment of
 *   the 16x16 row-major tile at `a` (row stride `lda`) and B fragment of the 16x8 row-major (K x N)
 *   tile at `b` (row stride `ldb`; the `_bt` variants take B stored N x K, a transposed weight) with the PTX ISA layouts ("Matrix Fragments for mma.m16n8k16"),
 *   then mma into acc[0..3] (rows g and g+8, columns 2t and 2t+1, g = lane/4, t = lane%4).
 * - `tfc_mma_regs_f16(acc, p, b, ldb)` / `_bf16` (`_bt`: B stored N x K): the same mma with the A
 *   fragment from 8 f32 registers p (two C fragments side by side), rounded to f16 / bf16.
 * - `tfc_copy8_f16(dst, src, count)`: 8 halves from global to shared, the first `count` (0..8)
 *   read and the rest zero; cp.async (16 bytes, zero-filled past `count`) when `src` is 16-byte
 *   aligned, else plain loads. `tfc_copy8_f32_bf16` / `tfc_copy8_f32_f16`: 8 f32 values rounded
 *   (nearest even) to bf16 / f16 bits, plain loads (cp.async cannot convert).
 * - `tfc_cp_async_16(dst, src, srcBytes)`, `tfc_cp_async_commit()`, `tfc_cp_async_wait<N>()`.
 */
export function cudaMmaHelpers(): string {
  const w = new Writer();
  w.line('#ifndef TFC_CUDA_MMA');
  w.line('#define TFC_CUDA_MMA');
  w.line('#ifndef TFC_CUDA_EMU');
  w.line('#include <cuda_bf16.h>');
  w.comment('PTX primitives (sm_80+). The emulator defines the same five names.');
  w.open('__device__ __forceinline__ unsigned int tfc_lane_id()');
  w.line('unsigned int lane;');
  w.line('asm("mov.u32 %0, %%laneid;" : "=r"(lane));');
  w.line('return lane;');
  w.close();
  for (const t of ['f16', 'bf16'] as const) {
    w.open(`__device__ __forceinline__ void tfc_mma_m16n8k16_${t}_f32(float* d, const unsigned int* a, const unsigned int* b)`);
    w.line('asm volatile(');
    w.line(`    "mma.sync.aligned.m16n8k16.row.col.f32.${t}.${t}.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"`);
    w.line('    : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])');
    w.line('    : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));');
    w.close();
  }
  w.comment('16 bytes global -> shared, asynchronous; bytes past src_bytes (0..16) are zero-filled.');
  w.open('__device__ __forceinline__ void tfc_cp_async_16(void* dst, const void* src, unsigned int src_bytes)');
  w.line('const unsigned int d = static_cast<unsigned int>(__cvta_generic_to_shared(dst));');
  w.line('asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" :: "r"(d), "l"(src), "r"(src_bytes) : "memory");');
  w.close();
  w.open('__device__ __forceinline__ void tfc_cp_async_commit()');
  w.line('asm volatile("cp.async.commit_group;" ::: "memory");');
  w.close();
  w.line('template <int N>');
  w.open('__device__ __forceinline__ void tfc_cp_async_wait()');
  w.line('asm volatile("cp.async.wait_group %0;" :: "n"(N) : "memory");');
  w.close();
  w.open('__device__ __forceinline__ unsigned short tfc_f32_to_bf16_bits(float x)');
  w.line('return __bfloat16_as_ushort(__float2bfloat16_rn(x));');
  w.close();
  w.open('__device__ __forceinline__ unsigned short tfc_f32_to_f16_bits(float x)');
  w.line('return __half_as_ushort(__float2half_rn(x));');
  w.close();
  w.open('__device__ __forceinline__ unsigned short tfc_f16_bits(__half x)');
  w.line('return __half_as_ushort(x);');
  w.close();
  w.line('#endif');
  w.comment('Two 16-bit values as one 32-bit fragment register (lo = lower column / k index).');
  w.open('__device__ __forceinline__ unsigned int tfc_pack2(unsigned short lo, unsigned short hi)');
  w.line('return static_cast<unsigned int>(lo) | (static_cast<unsigned int>(hi) << 16);');
  w.close();
  w.comment('PTX ISA, mma.m16n8k16 (.f16/.bf16), g = lane / 4, t = lane % 4:');
  w.comment('A register r holds row g + 8 * (r & 1), columns 2t + 8 * (r >> 1) + {0, 1};');
  w.comment('B register r holds k rows 2t + 8 * r + {0, 1} of column g.');
  w.comment('B_NK: B stored N x K (element (k, n) at b[n * ldb + k]), so a register is one 32-bit word.');
  w.line('template <bool IS_BF16, bool B_NK>');
  w.open('__device__ __forceinline__ void tfc_mma_tile(float* acc, const unsigned short* a, unsigned int lda, const unsigned short* b, unsigned int ldb)');
  w.line('const unsigned int lane = tfc_lane_id();');
  w.line('const unsigned int g = lane >> 2, t = lane & 3u;');
  w.line('unsigned int fa[4], fb[2];');
  w.open('for (int r = 0; r < 4; r++)');
  w.line('const unsigned short* p = a + (g + 8u * (r & 1)) * lda + 2u * t + 8u * (r >> 1);');
  w.line('fa[r] = tfc_pack2(p[0], p[1]);');
  w.close();
  loadBAndMma(w, 'p');
  w.close();
  typedWrappers(w, 'tfc_mma_tile', 'float* acc, const unsigned short* a, unsigned int lda, const unsigned short* b, unsigned int ldb', 'acc, a, lda, b, ldb');
  w.comment('A from registers (kernel IR mma_regs): p[0..7] are two C fragments side by side (n-tiles');
  w.comment('2j, 2j + 1 of an earlier mma), i.e. A register r = p[2r], p[2r + 1], rounded to nearest even.');
  w.line('template <bool IS_BF16, bool B_NK>');
  w.open('__device__ __forceinline__ void tfc_mma_regs(float* acc, const float* p, const unsigned short* b, unsigned int ldb)');
  w.line('const unsigned int lane = tfc_lane_id();');
  w.line('const unsigned int g = lane >> 2, t = lane & 3u;');
  w.line('unsigned int fa[4], fb[2];');
  w.open('for (int r = 0; r < 4; r++)');
  w.open('if (IS_BF16)');
  w.line('fa[r] = tfc_pack2(tfc_f32_to_bf16_bits(p[2 * r]), tfc_f32_to_bf16_bits(p[2 * r + 1]));');
  w.reopen('else');
  w.line('fa[r] = tfc_pack2(tfc_f32_to_f16_bits(p[2 * r]), tfc_f32_to_f16_bits(p[2 * r + 1]));');
  w.close();
  w.close();
  loadBAndMma(w, 'q');
  w.close();
  typedWrappers(w, 'tfc_mma_regs', 'float* acc, const float* p, const unsigned short* b, unsigned int ldb', 'acc, p, b, ldb');
  w.comment('dst: 16-byte aligned shared memory. A misaligned source (a row length not a multiple of 8)');
  w.comment('takes plain loads; count == 0 reads nothing (src may then point past the buffer).');
  w.open('__device__ __forceinline__ void tfc_copy8_f16(unsigned short* dst, const __half* src, unsigned int count)');
  w.open('if (count > 0u && (reinterpret_cast<unsigned long long>(src) & 15ull) == 0ull)');
  w.line('tfc_cp_async_16(dst, src, 2u * (count < 8u ? count : 8u));');
  w.line('return;');
  w.close();
  w.line('for (unsigned int i = 0; i < 8u; i++) dst[i] = i < count ? tfc_f16_bits(src[i]) : static_cast<unsigned short>(0);');
  w.close();
  w.open('__device__ __forceinline__ void tfc_copy8_f32_bf16(unsigned short* dst, const float* src, unsigned int count)');
  w.line('for (unsigned int i = 0; i < 8u; i++) dst[i] = i < count ? tfc_f32_to_bf16_bits(src[i]) : static_cast<unsigned short>(0);');
  w.close();
  w.open('__device__ __forceinline__ void tfc_copy8_f32_f16(unsigned short* dst, const float* src, unsigned int count)');
  w.line('for (unsigned int i = 0; i < 8u; i++) dst[i] = i < count ? tfc_f32_to_f16_bits(src[i]) : static_cast<unsigned short>(0);');
  w.close();
  w.line('#endif');
  return w.toString();
}

/**
 * The B fragment fb[0..1] of an m16n8k16 mma read from b (ldb; B_NK: stored N x K), then the
 * f16 or bf16 mma into acc; `p` names the pointer (tfc_mma_regs's A operand is already `p`).
 */
function loadBAndMma(w: Writer, p: string): void {
  w.open('for (int r = 0; r < 2; r++)');
  w.open('if (B_NK)');
  w.line(`const unsigned short* ${p} = b + g * ldb + 2u * t + 8u * r;`);
  w.line(`fb[r] = tfc_pack2(${p}[0], ${p}[1]);`);
  w.reopen('else');
  w.line(`const unsigned short* ${p} = b + (2u * t + 8u * r) * ldb + g;`);
  w.line(`fb[r] = tfc_pack2(${p}[0], ${p}[ldb]);`);
  w.close();
  w.close();
  w.open('if (IS_BF16)');
  w.line('tfc_mma_m16n8k16_bf16_f32(acc, fa, fb);');
  w.reopen('else');
  w.line('tfc_mma_m16n8k16_f16_f32(acc, fa, fb);');
  w.close();
}

/** `name`_f16, _bf16, _f16_bt, _bf16_bt: the template `name`<IS_BF16, B_NK> under plain names. */
function typedWrappers(w: Writer, name: string, params: string, args: string): void {
  for (const [t, isBf16] of [['f16', false], ['bf16', true]] as const) {
    for (const [suffix, isNk] of [['', false], ['_bt', true]] as const) {
      w.open(`__device__ __forceinline__ void ${name}_${t}${suffix}(${params})`);
      w.line(`${name}<${isBf16}, ${isNk}>(${args});`);
      w.close();
    }
  }
}
