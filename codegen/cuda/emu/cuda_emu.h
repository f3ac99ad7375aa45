// CPU emulation of the CUDA built-ins our generated kernels use, so that the same .cu compiles
// with `g++ -std=c++20 -pthread -include cuda_emu.h` and runs in CI without a GPU.
// Blocks run one after another; a block's threads are fibers (ucontext) on ONE OS thread, switched
// only where a GPU thread waits for others: __syncthreads (a barrier over the block) and the warp
// collectives (shuffles exchange through a per-warp slot array between two per-warp barriers; all
// 32 lanes must take part, as with the 0xffffffff mask on a GPU). The scheduler resumes the
// fibers round-robin; a fiber at a barrier yields until the barrier's last arrival releases it.
// (OS threads with std::barrier cost a futex wake-up storm per barrier: on 2 cores most of the
// emulator's time went to the kernel.) __shared__ is `static`: one copy, which is per-block storage
// because blocks never overlap. __half is an IEEE binary16 with round-to-nearest-even conversions.
#ifndef TFC_CUDA_EMU_H
#define TFC_CUDA_EMU_H
#define TFC_CUDA_EMU 1

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <ucontext.h>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))

struct dim3 {
  unsigned int x = 1, y = 1, z = 1;
};

namespace tfc_emu {
/**
 * A barrier of `expected` fibers: each arrival but the last yields to the scheduler until the
 * last one bumps the generation (the fibers then go on in the scheduler's order).
 */
struct Barrier {
  explicit Barrier(unsigned expected) : expected(expected) {}
  unsigned expected, arrived = 0;
  unsigned long generation = 0;
  void arrive_and_wait();
};
struct Warp {
  explicit Warp(unsigned lanes) : lanes(lanes), bar(lanes) {}
  unsigned lanes;
  Barrier bar;
  alignas(8) unsigned char slot[32][8];
  std::uint32_t mma_a[32][4], mma_b[32][2];  // mma fragments of every lane (tfc_emu::mma_m16n8k16)
};
inline dim3 block_dim, grid_dim, block_idx;  // block_idx is written between blocks only
// The running fiber's ids: set by the scheduler before it resumes a fiber.
inline dim3 thread_idx;
inline unsigned linear_tid = 0;
inline Barrier* block_barrier = nullptr;
inline std::vector<std::unique_ptr<Warp>> warps;

struct Fiber {
  ucontext_t ctx;
  char* stack = nullptr;
  bool finished = false;
};
inline ucontext_t scheduler_ctx;
inline std::vector<Fiber> fibers;
inline unsigned current = 0;
inline unsigned long progress = 0;  // arrivals and finishes: a pass without any means a deadlock
inline const std::function<void()>* running_kernel = nullptr;
constexpr std::size_t fiber_stack_bytes = 256 * 1024;  // malloc'd: pages are touched only as used
// Fiber stacks kept across launches (grown to the largest block, never freed): a malloc of 256 KiB
// is an mmap, so stacks per launch cost an mmap, page faults and an munmap per thread per launch.
inline std::vector<char*> stack_pool;

inline void yield_to_scheduler() { swapcontext(&fibers[current].ctx, &scheduler_ctx); }

inline void Barrier::arrive_and_wait() {
  progress++;
  if (++arrived == expected) {
    arrived = 0;
    generation++;
    return;
  }
  const unsigned long gen = generation;
  while (generation == gen) yield_to_scheduler();
}

inline void fiber_main() {
  (*running_kernel)();
  fibers[current].finished = true;
  progress++;
  // returning resumes uc_link: the scheduler
}

template <typename T>
T exchange(T v, unsigned src_lane) {
  static_assert(sizeof(T) <= 8, "shuffle of a value wider than 8 bytes");
  Warp& w = *warps[linear_tid / 32];
  const unsigned lane = linear_tid % 32;
  std::memcpy(w.slot[lane], &v, sizeof(T));
  w.bar.arrive_and_wait();
  T r;
  // Lanes outside the warp (a partial last warp) read their own value.
  std::memcpy(&r, w.slot[src_lane < w.lanes ? src_lane : lane], sizeof(T));
  w.bar.arrive_and_wait();
  return r;
}

/** Runs `kernel` over the grid: blocks in x, y, z order, each block's threads as fibers. */
inline void launch(dim3 grid, dim3 block, const std::function<void()>& kernel) {
  const unsigned n = block.x * block.y * block.z;
  block_dim = block;
  grid_dim = grid;
  Barrier sync(n);
  block_barrier = &sync;
  warps.clear();
  for (unsigned w = 0; w * 32 < n; w++) warps.push_back(std::make_unique<Warp>(std::min(32u, n - w * 32)));
  running_kernel = &kernel;
  fibers.assign(n, Fiber{});
  while (stack_pool.size() < n) stack_pool.push_back(static_cast<char*>(std::malloc(fiber_stack_bytes)));
  for (unsigned t = 0; t < n; t++) fibers[t].stack = stack_pool[t];
  for (unsigned z = 0; z < grid.z; z++)
    for (unsigned y = 0; y < grid.y; y++)
      for (unsigned x = 0; x < grid.x; x++) {
        block_idx = dim3{x, y, z};
        for (auto& f : fibers) {
          getcontext(&f.ctx);
          f.ctx.uc_stack.ss_sp = f.stack;
          f.ctx.uc_stack.ss_size = fiber_stack_bytes;
          f.ctx.uc_link = &scheduler_ctx;
          f.finished = false;
          makecontext(&f.ctx, fiber_main, 0);
        }
        unsigned live = n;
        unsigned idle_passes = 0;
        while (live > 0) {
          const unsigned long before = progress;
          live = 0;
          for (unsigned t = 0; t < n; t++) {
            if (fibers[t].finished) continue;
            current = t;
            linear_tid = t;
            thread_idx = dim3{t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
            swapcontext(&scheduler_ctx, &fibers[t].ctx);
            if (!fibers[t].finished) live++;
          }
          idle_passes = progress == before ? idle_passes + 1 : 0;
          if (idle_passes > 1) {
            std::fprintf(stderr, "tfc_emu: block (%u, %u, %u): %u threads wait at a barrier the others never reach\n", x, y, z, live);
            std::abort();
          }
        }
      }
  fibers.clear();
  block_barrier = nullptr;
  running_kernel = nullptr;
  warps.clear();
}
}  // namespace tfc_emu

#define threadIdx (tfc_emu::thread_idx)
#define blockIdx (tfc_emu::block_idx)
#define blockDim (tfc_emu::block_dim)
#define gridDim (tfc_emu::grid_dim)
#define warpSize 32

inline void __syncthreads() { tfc_emu::block_barrier->arrive_and_wait(); }

template <typename T>
inline T __shfl_xor_sync(unsigned /*mask*/, T v, int lane_mask, int /*width*/ = 32) {
  return tfc_emu::exchange(v, (tfc_emu::linear_tid % 32) ^ static_cast<unsigned>(lane_mask));
}
template <typename T>
inline T __shfl_sync(unsigned /*mask*/, T v, int src_lane, int /*width*/ = 32) {
  return tfc_emu::exchange(v, static_cast<unsigned>(src_lane) % 32);
}

// ---- math built-ins not in <cmath> ----
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline int max(int a, int b) { return a > b ? a : b; }
inline int min(int a, int b) { return a < b ? a : b; }
inline unsigned int max(unsigned int a, unsigned int b) { return a > b ? a : b; }
inline unsigned int min(unsigned int a, unsigned int b) { return a < b ? a : b; }
inline float __int_as_float(int x) { return std::bit_cast<float>(x); }
inline int __float_as_int(float x) { return std::bit_cast<int>(x); }

// ---- __half: binary16 storage, arithmetic through float (as the printer spells f16 math) ----
struct __half {
  std::uint16_t bits;
};
inline __half __float2half(float f) {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  const std::uint32_t sign = (x >> 16) & 0x8000u;
  const std::uint32_t absx = x & 0x7fffffffu;
  if (absx > 0x7f800000u) return __half{static_cast<std::uint16_t>(sign | 0x7e00u)};  // NaN
  if (absx >= 0x477ff000u) return __half{static_cast<std::uint16_t>(sign | 0x7c00u)};  // rounds to inf
  if (absx < 0x38800000u) {  // subnormal half (or zero): value / 2^-24 rounded to nearest even
    const float scaled = std::bit_cast<float>(absx) * 16777216.0f;
    return __half{static_cast<std::uint16_t>(sign | static_cast<std::uint32_t>(std::nearbyint(scaled)))};
  }
  const std::uint32_t mant = absx & 0x7fffffu;
  std::uint32_t h = ((absx >> 23) - 112u) << 10 | (mant >> 13);
  const std::uint32_t rest = mant & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++;  // may carry into the exponent: correct
  return __half{static_cast<std::uint16_t>(sign | h)};
}
inline float __half2float(__half h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h.bits & 0x8000u) << 16;
  const std::uint32_t e = (h.bits >> 10) & 0x1fu, m = h.bits & 0x3ffu;
  if (e == 0) return std::bit_cast<float>(sign) + (sign ? -1.0f : 1.0f) * static_cast<float>(m) * 5.9604644775390625e-8f;
  if (e == 31) return std::bit_cast<float>(sign | 0x7f800000u | (m << 13));
  return std::bit_cast<float>(sign | ((e + 112u) << 23) | (m << 13));
}
#define TFC_HALF_BINARY(op) \
  inline __half operator op(__half a, __half b) { return __float2half(__half2float(a) op __half2float(b)); }
TFC_HALF_BINARY(+)
TFC_HALF_BINARY(-)
TFC_HALF_BINARY(*)
TFC_HALF_BINARY(/)
#undef TFC_HALF_BINARY
#define TFC_HALF_COMPARE(op) \
  inline bool operator op(__half a, __half b) { return __half2float(a) op __half2float(b); }
TFC_HALF_COMPARE(<)
TFC_HALF_COMPARE(<=)
TFC_HALF_COMPARE(>)
TFC_HALF_COMPARE(>=)
TFC_HALF_COMPARE(==)
TFC_HALF_COMPARE(!=)
#undef TFC_HALF_COMPARE
inline __half operator-(__half a) { return __half{static_cast<std::uint16_t>(a.bits ^ 0x8000u)}; }

// ---- tensor-core and cp.async primitives of codegen/cuda/mma.ts (PTX under nvcc) ----
inline unsigned short __half_as_ushort(__half h) { return h.bits; }
inline unsigned int tfc_lane_id() { return tfc_emu::linear_tid % 32; }
namespace tfc_emu {
inline float bits16_to_float(std::uint32_t bits, bool is_bf16) {
  return is_bf16 ? std::bit_cast<float>(bits << 16) : __half2float(__half{static_cast<std::uint16_t>(bits)});
}
/**
 * mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16}: a warp collective. Every lane posts its A and
 * B fragment registers, each rebuilds the 16x16 A and 16x8 B from all 32 lanes by the PTX ISA
 * layout (A reg r of lane (g, t) = row g + 8(r & 1), cols 2t + 8(r >> 1) + {0, 1}, low half
 * first; B reg r = k rows 2t + 8r + {0, 1} of column g), and updates its own 4 accumulators
 * (rows g, g + 8; columns 2t, 2t + 1). Products of 16-bit floats are exact in f32; the sum runs
 * in f32 in k order (the hardware's internal order and rounding may differ in the last bits).
 */
inline void mma_m16n8k16(float* d, const unsigned int* a, const unsigned int* b, bool is_bf16) {
  Warp& w = *warps[linear_tid / 32];
  if (w.lanes != 32) {
    std::fprintf(stderr, "tfc_emu: mma needs a full warp (%u lanes)\n", w.lanes);
    std::abort();
  }
  const unsigned lane = linear_tid % 32;
  std::memcpy(w.mma_a[lane], a, sizeof w.mma_a[lane]);
  std::memcpy(w.mma_b[lane], b, sizeof w.mma_b[lane]);
  w.bar.arrive_and_wait();
  float A[16][16], B[16][8];
  for (unsigned l = 0; l < 32; l++) {
    const unsigned g = l >> 2, t = l & 3;
    for (unsigned r = 0; r < 4; r++)
      for (unsigned h = 0; h < 2; h++) A[g + 8 * (r & 1)][2 * t + 8 * (r >> 1) + h] = bits16_to_float((w.mma_a[l][r] >> (16 * h)) & 0xffffu, is_bf16);
    for (unsigned r = 0; r < 2; r++)
      for (unsigned h = 0; h < 2; h++) B[2 * t + 8 * r + h][g] = bits16_to_float((w.mma_b[l][r] >> (16 * h)) & 0xffffu, is_bf16);
  }
  w.bar.arrive_and_wait();  // the fragments may be overwritten by the next mma from here on
  const unsigned g = lane >> 2, t = lane & 3;
  for (unsigned i = 0; i < 4; i++) {
    const unsigned row = g + 8 * (i >> 1), col = 2 * t + (i & 1);
    float s = d[i];
    for (unsigned k = 0; k < 16; k++) s += A[row][k] * B[k][col];
    d[i] = s;
  }
}
inline std::uint16_t f32_to_bf16_bits(float x) {  // round to nearest even; NaN stays NaN
  const std::uint32_t u = std::bit_cast<std::uint32_t>(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x40u);
  return static_cast<std::uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
}  // namespace tfc_emu
inline void tfc_mma_m16n8k16_f16_f32(float* d, const unsigned int* a, const unsigned int* b) { tfc_emu::mma_m16n8k16(d, a, b, false); }
inline void tfc_mma_m16n8k16_bf16_f32(float* d, const unsigned int* a, const unsigned int* b) { tfc_emu::mma_m16n8k16(d, a, b, true); }
/** cp.async as a synchronous copy (zero fill past src_bytes); commit and wait have nothing to do. */
inline void tfc_cp_async_16(void* dst, const void* src, unsigned int src_bytes) {
  std::memcpy(dst, src, src_bytes);
  std::memset(static_cast<unsigned char*>(dst) + src_bytes, 0, 16 - src_bytes);
}
inline void tfc_cp_async_commit() {}
template <int N>
inline void tfc_cp_async_wait() {}
inline unsigned short tfc_f32_to_bf16_bits(float x) { return tfc_emu::f32_to_bf16_bits(x); }
inline unsigned short tfc_f32_to_f16_bits(float x) { return __float2half(x).bits; }
inline unsigned short tfc_f16_bits(__half x) { return x.bits; }

// ---- host side of the emulator: buffers passed to kernels as untyped pointers ----
namespace tfc_emu {
/** Converts to any element pointer type, as the driver does not know the kernels' types. */
struct AnyPtr {
  void* p;
  template <typename T>
  operator T*() const {
    return static_cast<T*>(p);
  }
};
}  // namespace tfc_emu

#endif
