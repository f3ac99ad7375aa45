// CUDA C++ spellings of the kernel IR's scalar types, operators, math functions, builtins and
// subgroup ops; mirrors codegen/wgsl/ops.ts. Typed as Records: a kernel IR op without a CUDA
// spelling is a compile error. f16 math goes through f32 (`__half2float`/`__float2half`).
import type { BinaryOp, BuiltinId, MathFn, ScalarType, SubgroupOp, UnaryOp } from '../../src/kernel/ir/ir.js';

export const cudaType: Record<ScalarType, string> = {
  f32: 'float',
  f16: '__half',
  i32: 'int',
  u32: 'unsigned int',
  bool: 'bool',
  i8: 'signed char',
};

const toF32 = (a: string, t: ScalarType): string => (t === 'f16' ? `__half2float(${a})` : a);
const fromF32 = (a: string, t: ScalarType): string => (t === 'f16' ? `__float2half(${a})` : a);

/**
 * Binary operators; `t` is the operand type. `%` on floats is C's fmodf (truncated remainder, as
 * WGSL's `%`); f16 arithmetic and comparisons use cuda_fp16.h's `__half` operators.
 */
export const cudaBinary: Record<BinaryOp, (a: string, b: string, t: ScalarType) => string> = {
  add: (a, b) => `${a} + ${b}`,
  sub: (a, b) => `${a} - ${b}`,
  mul: (a, b) => `${a} * ${b}`,
  div: (a, b) => `${a} / ${b}`,
  rem: (a, b, t) => (t === 'f32' || t === 'f16' ? fromF32(`fmodf(${toF32(a, t)}, ${toF32(b, t)})`, t) : `${a} % ${b}`),
  lt: (a, b) => `${a} < ${b}`,
  le: (a, b) => `${a} <= ${b}`,
  gt: (a, b) => `${a} > ${b}`,
  ge: (a, b) => `${a} >= ${b}`,
  eq: (a, b) => `${a} == ${b}`,
  ne: (a, b) => `${a} != ${b}`,
  and: (a, b) => `${a} && ${b}`,
  or: (a, b) => `${a} || ${b}`,
};

/** Binary ops printed as function calls (no parentheses needed around them). */
export const cudaBinaryIsCall = (op: BinaryOp, t: ScalarType): boolean => op === 'rem' && (t === 'f32' || t === 'f16');

export const cudaUnary: Record<UnaryOp, string> = { neg: '-', not: '!' };

/** f32 libdevice names; integer `abs/max/min` are CUDA's overloads; f16 computes in f32. */
const floatFn = (f32Name: string, intName: string) => (a: readonly string[], t: ScalarType): string => {
  if (t === 'i32' || t === 'u32') return `${intName}(${a.join(', ')})`;
  return fromF32(`${f32Name}(${a.map((x) => toF32(x, t)).join(', ')})`, t);
};

export const cudaMath: Record<MathFn, (args: readonly string[], type: ScalarType) => string> = {
  exp: floatFn('expf', 'expf'),
  log: floatFn('logf', 'logf'),
  sqrt: floatFn('sqrtf', 'sqrtf'),
  rsqrt: floatFn('rsqrtf', 'rsqrtf'),
  tanh: floatFn('tanhf', 'tanhf'),
  erf: floatFn('erff', 'erff'),
  sin: floatFn('sinf', 'sinf'),
  cos: floatFn('cosf', 'cosf'),
  abs: floatFn('fabsf', 'abs'),
  floor: floatFn('floorf', 'floorf'),
  round: floatFn('rintf', 'rintf'), // half to even (the default rounding mode); roundf rounds half away from zero
  pow: floatFn('powf', 'powf'),
  max: floatFn('fmaxf', 'max'),
  min: floatFn('fminf', 'min'),
};

/**
 * How each builtin id is read. Vector ids are spelled inline per axis; scalar ones are locals the
 * printer declares at the top of the kernel (`decl`) when used. A warp is 32 lanes of consecutive
 * linear thread ids, so the lane is `lindex & 31`.
 */
export const cudaBuiltin: Record<
  BuiltinId,
  { readonly kind: 'vector'; readonly axis: (xyz: string) => string } | { readonly kind: 'scalar'; readonly name: string; readonly decl: string; readonly needs: readonly BuiltinId[] }
> = {
  local_id: { kind: 'vector', axis: (a) => `threadIdx.${a}` },
  workgroup_id: { kind: 'vector', axis: (a) => `blockIdx.${a}` },
  global_id: { kind: 'vector', axis: (a) => `(blockIdx.${a} * blockDim.${a} + threadIdx.${a})` },
  local_index: { kind: 'scalar', name: 'lindex', decl: 'threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)', needs: [] },
  subgroup_size: { kind: 'scalar', name: 'sg_size', decl: '32u', needs: [] },
  subgroup_lane: { kind: 'scalar', name: 'sg_lane', decl: 'lindex & 31u', needs: ['local_index'] },
};

/** Warp collectives over all 32 lanes (helpers in the prelude, built on __shfl_xor_sync / __shfl_sync). */
export const cudaSubgroup: Record<SubgroupOp, string> = {
  sum: 'tfc_warp_sum',
  max: 'tfc_warp_max',
  broadcast_first: 'tfc_warp_broadcast_first',
  shuffle: '__shfl_sync', // with the mask and lane operands: printed by CudaPrinter.subgroupShuffle
  broadcast: '__shfl_sync', // the same with a literal lane
};

/**
 * Conversion of `a` (type `from`) to `to`; bool -> number is 0/1, number -> bool is `!= 0`. To i8:
 * clamped to -128..127 before the conversion (float -> integer out of range is undefined in C++,
 * and the emulator runs on the CPU), then truncated toward zero; NaN is unspecified.
 */
export function cudaCast(to: ScalarType, from: ScalarType, a: string): string {
  if (to === from) return a;
  if (from === 'f16') return to === 'f32' ? `__half2float(${a})` : cudaCast(to, 'f32', `__half2float(${a})`);
  if (to === 'i8') {
    if (from === 'f32') return `(signed char)(fminf(fmaxf(${a}, -128.0f), 127.0f))`;
    if (from === 'i32') return `(signed char)(max(-128, min(127, ${a})))`;
    if (from === 'u32') return `(signed char)(min(127u, ${a}))`;
    return `(signed char)(${a})`;
  }
  if (to === 'f16') return `__float2half(${from === 'f32' ? a : `(float)(${a})`})`;
  if (to === 'bool') return `(${a} != 0)`;
  return `(${cudaType[to]})(${a})`;
}
