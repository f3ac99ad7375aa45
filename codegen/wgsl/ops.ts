// WGSL spellings of the kernel IR's scalar types, operators, math functions, builtins and
// subgroup ops. Typed as Records: a kernel IR op without a WGSL spelling is a compile error.
import type { BinaryOp, BuiltinId, MathFn, ScalarType, SubgroupOp, UnaryOp } from '../../src/kernel/ir/ir.js';

export const wgslType: Record<ScalarType, string> = {
  f32: 'f32',
  f16: 'f16',
  i32: 'i32',
  u32: 'u32',
  bool: 'bool',
  i8: 'i32', // a register; an i8 buffer is declared array<u32> (four bytes a word, print.ts)
};

export const wgslBinary: Record<BinaryOp, string> = {
  add: '+',
  sub: '-',
  mul: '*',
  div: '/',
  rem: '%',
  lt: '<',
  le: '<=',
  gt: '>',
  ge: '>=',
  eq: '==',
  ne: '!=',
  and: '&&',
  or: '||',
};

export const wgslUnary: Record<UnaryOp, string> = { neg: '-', not: '!' };

/** How to call each math function; `erf` is the emitted helper `tfc_erf` (f32 only, so f16 converts). */
export const wgslMath: Record<MathFn, (args: readonly string[], type: ScalarType) => string> = {
  exp: (a) => `exp(${a.join(', ')})`,
  log: (a) => `log(${a.join(', ')})`,
  sqrt: (a) => `sqrt(${a.join(', ')})`,
  rsqrt: (a) => `inverseSqrt(${a.join(', ')})`,
  tanh: (a) => `tanh(${a.join(', ')})`,
  erf: (a, t) => (t === 'f32' ? `tfc_erf(${a.join(', ')})` : `${t}(tfc_erf(f32(${a.join(', ')})))`),
  sin: (a) => `sin(${a.join(', ')})`,
  cos: (a) => `cos(${a.join(', ')})`,
  abs: (a) => `abs(${a.join(', ')})`,
  floor: (a) => `floor(${a.join(', ')})`,
  round: (a) => `round(${a.join(', ')})`, // WGSL round: half to even
  pow: (a) => `pow(${a.join(', ')})`,
  max: (a) => `max(${a.join(', ')})`,
  min: (a) => `min(${a.join(', ')})`,
};

/** Entry-point parameter (attribute, name, type) per builtin and how an axis is read. */
export const wgslBuiltin: Record<BuiltinId, { readonly attr: string; readonly name: string; readonly type: string; readonly isVector: boolean }> = {
  local_id: { attr: 'local_invocation_id', name: 'lid', type: 'vec3<u32>', isVector: true },
  local_index: { attr: 'local_invocation_index', name: 'lindex', type: 'u32', isVector: false },
  workgroup_id: { attr: 'workgroup_id', name: 'wid', type: 'vec3<u32>', isVector: true },
  global_id: { attr: 'global_invocation_id', name: 'gid', type: 'vec3<u32>', isVector: true },
  subgroup_size: { attr: 'subgroup_size', name: 'sg_size', type: 'u32', isVector: false },
  subgroup_lane: { attr: 'subgroup_invocation_id', name: 'sg_lane', type: 'u32', isVector: false },
};

export const wgslSubgroup: Record<SubgroupOp, string> = {
  sum: 'subgroupAdd',
  max: 'subgroupMax',
  broadcast_first: 'subgroupBroadcastFirst',
  shuffle: 'subgroupShuffle', // with the lane operand: printed by WgslPrinter.subgroupShuffle
  broadcast: 'subgroupBroadcast', // with a literal lane operand
};
