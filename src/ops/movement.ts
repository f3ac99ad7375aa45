// Data movement: reshape, permute, slice, concat, gather (embedding lookup along axis 0);
// scatter_add and scatter are in scatter.ts.
// None of them compute, so their FLOPs are 0; the interpreter copies element by element.
import { type Dim, dimAdd, dimConst, dimConstValue, dimEquals, dimEval, dimSub, printDim } from '../base/dim.js';
import { type Attrs, dimAttr, intAttr, intsAttr } from '../graph/ir.js';
import { type TensorType, printType } from '../graph/types.js';
import { makeTensor, numel, ravel, stridesOf, unravel, walkOffsets, type Tensor64 } from '../base/tensor.js';
import { InterpError } from './errors.js';
import { type GradBuilder, type OpDef, type OpError, type InterpContext, type VjpArgs, defineOp } from './define.js';
import { scatterAddOp, scatterOp } from './scatter.js';
import { numelDim, opError } from './elementwise.js';

const zeroFlops = (): Dim => dimConst(0);

function printShape(shape: readonly Dim[]): string {
  return `[${shape.map((d) => printDim(d, true)).join(',')}]`;
}

function one(operands: readonly TensorType[], name: string): TensorType | OpError {
  const [x] = operands;
  return x !== undefined && operands.length === 1 ? x : opError('TFC104', `${name} takes 1 operand, got ${operands.length}`);
}

function isType(x: TensorType | OpError): x is TensorType {
  return !('code' in x);
}

function intOf(attrs: Attrs, key: string): number | undefined {
  const a = attrs[key];
  return a !== undefined && a.kind === 'int' ? a.value : undefined;
}

function dimOf(attrs: Attrs, key: string): Dim | undefined {
  const a = attrs[key];
  return a !== undefined && a.kind === 'dim' ? a.value : undefined;
}

function evalDim(d: Dim, ctx: InterpContext, what: string): number {
  const v = dimEval(d, ctx.dims);
  if (v === undefined) throw new InterpError('TFC306', `${what} ${printDim(d)} has an unbound dimension`, ctx.node.loc);
  return v;
}

function first(operands: readonly Tensor64[], name: string): Tensor64 {
  const [x] = operands;
  if (x === undefined) throw new Error(`internal: ${name} without operand`);
  return x;
}

function operand(xs: readonly number[], i: number): number {
  const x = xs[i];
  if (x === undefined) throw new Error(`internal: missing operand ${i}`);
  return x;
}

/** A slice's cotangent: the operand's shape, zero outside [start, end) (a concat of zeros, the cotangent, zeros). */
function sliceVjp(g: GradBuilder, a: VjpArgs): number {
  const t = g.type(operand(a.x, 0));
  const axis = intAttr(a.node, 'axis');
  const start = dimAttr(a.node, 'start');
  const end = dimAttr(a.node, 'end');
  const size = t.shape[axis] ?? dimConst(0);
  const zeros = (n: Dim): number => g.zeros({ dtype: t.dtype, shape: t.shape.map((d, i) => (i === axis ? n : d)) });
  const after = dimSub(size, end);
  const parts = [...(dimConstValue(start) === 0 ? [] : [zeros(start)]), a.dy, ...(dimConstValue(after) === 0 ? [] : [zeros(after)])];
  return parts.length === 1 ? a.dy : g.node('concat', parts, { axis: { kind: 'int', value: axis } });
}

/** Joins operands along `axis` (also packed_weight's rule, along axis 0). */
const concatOp: OpDef = defineOp({
  name: 'concat',
  family: 'movement',
  arity: 'variadic',
  attrs: { axis: 'int' },
  doc: 'joins operands along `axis`; all other dims and the dtype must match',
  infer: (operands, attrs) => {
    const [x, ...rest] = operands;
    if (x === undefined) return opError('TFC104', 'concat needs at least one operand');
    const axis = intOf(attrs, 'axis');
    if (axis === undefined || axis < 0 || axis >= x.shape.length) {
      return opError('TFC203', `concat axis ${axis ?? '?'} is out of range for ${printType(x)}`);
    }
    let total = x.shape[axis] ?? dimConst(0);
    for (const y of rest) {
      if (y.dtype !== x.dtype) return opError('TFC202', `cannot concat ${printType(x)} and ${printType(y)}: dtypes ${x.dtype} and ${y.dtype} differ`);
      const same = y.shape.length === x.shape.length && y.shape.every((d, i) => i === axis || dimEquals(d, x.shape[i] ?? d));
      if (!same) return opError('TFC211', `cannot concat ${printType(x)} and ${printType(y)} along axis ${axis}`);
      total = dimAdd(total, y.shape[axis] ?? dimConst(0));
    }
    return { dtype: x.dtype, shape: x.shape.map((d, i) => (i === axis ? total : d)) };
  },
  interp: (operands, ctx) => {
    const axis = intAttr(ctx.node, 'axis');
    const out = makeTensor(ctx.node.type.dtype, ctx.shape);
    let base = 0;
    for (const x of operands) {
      for (let f = 0; f < x.data.length; f++) {
        const idx = unravel(f, x.shape);
        idx[axis] = (idx[axis] ?? 0) + base;
        out.data[ravel(idx, ctx.shape)] = x.data[f] ?? NaN;
      }
      base += x.shape[axis] ?? 0;
    }
    return out;
  },
  // Each operand's range of the cotangent.
  vjp: (g, a) => {
    const axis = intAttr(a.node, 'axis');
    let offset = dimConst(0);
    return a.x.map((x, i) => {
      const start = offset;
      offset = dimAdd(offset, g.type(x).shape[axis] ?? dimConst(0));
      if (a.needs[i] !== true) return undefined;
      return g.node('slice', [a.dy], { axis: { kind: 'int', value: axis }, start: { kind: 'dim', value: start }, end: { kind: 'dim', value: offset } });
    });
  },
  flops: zeroFlops,
  lowering: 'unfused',
});

export const movementOps: readonly OpDef[] = [
  defineOp({
    name: 'reshape',
    family: 'movement',
    arity: 1,
    attrs: { shape: 'dims' },
    doc: 'same elements in row-major order under a new shape (fully resolved: no -1 in the IR)',
    infer: (operands, attrs) => {
      const x = one(operands, 'reshape');
      if (!isType(x)) return x;
      const s = attrs['shape'];
      if (s === undefined || s.kind !== 'dims') return opError('TFC205', `reshape needs a 'shape' list of dims`);
      for (const d of s.value) {
        const c = dimConstValue(d);
        if (c !== undefined && c < 0) return opError('TFC206', `reshape of ${printType(x)} to ${printShape(s.value)}: dimension ${c} is negative`);
      }
      const before = numelDim(x.shape);
      const after = numelDim(s.value);
      if (!dimEquals(before, after)) {
        return opError('TFC205', `cannot reshape ${printType(x)} to ${printShape(s.value)}: ${printDim(before)} elements vs ${printDim(after)}`);
      }
      return { dtype: x.dtype, shape: s.value };
    },
    interp: (operands, ctx) => {
      const x = first(operands, 'reshape');
      if (numel(ctx.shape) !== x.data.length) {
        throw new InterpError('TFC205', `cannot reshape [${x.shape.join(',')}] to [${ctx.shape.join(',')}]`, ctx.node.loc);
      }
      return { dtype: x.dtype, shape: [...ctx.shape], data: x.data.slice() };
    },
    vjp: (g, a) => [a.needs[0] === true ? g.node('reshape', [a.dy], { shape: { kind: 'dims', value: g.type(operand(a.x, 0)).shape } }) : undefined],
    flops: zeroFlops,
    lowering: 'unfused',
  }),
  defineOp({
    name: 'permute',
    family: 'movement',
    arity: 1,
    attrs: { perm: 'ints' },
    doc: 'reorders axes: result axis i is input axis perm[i]',
    infer: (operands, attrs) => {
      const x = one(operands, 'permute');
      if (!isType(x)) return x;
      const p = attrs['perm'];
      const perm = p !== undefined && p.kind === 'ints' ? p.value : undefined;
      const rank = x.shape.length;
      if (perm === undefined || perm.length !== rank || [...perm].sort((a, b) => a - b).some((v, i) => v !== i)) {
        return opError('TFC210', `[${perm?.join(',') ?? ''}] is not a permutation of the ${rank} axes of ${printType(x)}`);
      }
      return { dtype: x.dtype, shape: perm.map((a) => x.shape[a] ?? dimConst(1)) };
    },
    interp: (operands, ctx) => {
      const x = first(operands, 'permute');
      const perm = intsAttr(ctx.node, 'perm');
      const out = makeTensor(x.dtype, ctx.shape);
      const inStrides = stridesOf(x.shape);
      const offsets = walkOffsets(ctx.shape, perm.map((a) => inStrides[a] ?? 0));
      for (let f = 0; f < out.data.length; f++) out.data[f] = x.data[offsets[f] ?? -1] ?? NaN;
      return out;
    },
    // The inverse permutation.
    vjp: (g, a) => {
      const perm = intsAttr(a.node, 'perm');
      const inv = perm.map((_, i) => perm.indexOf(i));
      return [a.needs[0] === true ? g.node('permute', [a.dy], { perm: { kind: 'ints', value: inv } }) : undefined];
    },
    flops: zeroFlops,
    lowering: 'unfused',
  }),
  defineOp({
    name: 'slice',
    family: 'movement',
    arity: 1,
    attrs: { axis: 'int', start: 'dim', end: 'dim' },
    doc: 'elements start <= i < end along `axis` (start and end are dims; end exclusive)',
    infer: (operands, attrs) => {
      const x = one(operands, 'slice');
      if (!isType(x)) return x;
      const axis = intOf(attrs, 'axis');
      const start = dimOf(attrs, 'start');
      const end = dimOf(attrs, 'end');
      if (axis === undefined || start === undefined || end === undefined) return opError('TFC214', `slice needs axis, start and end`);
      const d = x.shape[axis];
      if (axis < 0 || d === undefined) return opError('TFC203', `slice axis ${axis} is out of range for ${printType(x)}`);
      const len = dimSub(end, start);
      const bad = (what: string): OpError =>
        opError('TFC214', `slice ${printDim(start, true)}:${printDim(end, true)} of axis ${axis} of ${printType(x)}: ${what}`);
      // Checked where the difference is a constant; symbolic bounds are checked at run time.
      const s0 = dimConstValue(start);
      if (s0 !== undefined && s0 < 0) return bad('start is negative');
      const lenC = dimConstValue(len);
      if (lenC !== undefined && lenC < 0) return bad('end is before start');
      const rest = dimConstValue(dimSub(d, end));
      if (rest !== undefined && rest < 0) return bad(`end is past the axis size ${printDim(d, true)}`);
      return { dtype: x.dtype, shape: x.shape.map((e, i) => (i === axis ? len : e)) };
    },
    interp: (operands, ctx) => {
      const x = first(operands, 'slice');
      const axis = intAttr(ctx.node, 'axis');
      const start = evalDim(dimAttr(ctx.node, 'start'), ctx, 'slice start');
      const end = evalDim(dimAttr(ctx.node, 'end'), ctx, 'slice end');
      const size = x.shape[axis] ?? 0;
      if (start < 0 || end < start || end > size) {
        throw new InterpError('TFC214', `slice ${start}:${end} is out of range for axis ${axis} of size ${size}`, ctx.node.loc);
      }
      const out = makeTensor(x.dtype, ctx.shape);
      const inStrides = stridesOf(x.shape);
      const offsets = walkOffsets(ctx.shape, inStrides, start * (inStrides[axis] ?? 0));
      for (let f = 0; f < out.data.length; f++) out.data[f] = x.data[offsets[f] ?? -1] ?? NaN;
      return out;
    },
    vjp: (g, a) => [a.needs[0] === true ? sliceVjp(g, a) : undefined],
    flops: zeroFlops,
    lowering: 'unfused',
  }),
  concatOp,
  // A weight's buffer filled at load from several weights (pack-weights): their rows, concatenated.
  // No kernel computes it (lowering 'none'): the plan gives it a weight buffer whose parts are the
  // operands' safetensors tensors (PlanBuffer.parts), and the runtimes write each part at its rows.
  defineOp({
    name: 'packed_weight',
    family: 'source',
    arity: 'variadic',
    attrs: {},
    doc: 'the `weight` operands concatenated along axis 0, at load (pack-weights: one matmul over q/k/v or gate/up); no kernel',
    infer: (operands) => {
      if (operands.length < 2) return opError('TFC104', `packed_weight needs at least 2 operands, got ${operands.length}`);
      return concatOp.infer(operands, { axis: { kind: 'int', value: 0 } });
    },
    interp: (operands, ctx) => concatOp.interp(operands, { ...ctx, node: { ...ctx.node, attrs: { axis: { kind: 'int', value: 0 } } } }),
    noGrad: 'packed_weight is made by pack-weights, which training leaves out (weights are updated by name)',
    flops: zeroFlops,
    lowering: 'none',
  }),
  defineOp({
    name: 'gather',
    family: 'movement',
    arity: 2,
    attrs: {},
    doc: 'table[indices] along axis 0: [V, ...] with i32 indices [...I] -> [...I, ...]; an index outside [0, V) is an error (TFC309)',
    infer: (operands) => {
      const [table, ids] = operands;
      if (table === undefined || ids === undefined || operands.length !== 2) {
        return opError('TFC104', `gather takes 2 operands, got ${operands.length}`);
      }
      if (ids.dtype !== 'i32') return opError('TFC208', `gather needs i32 indices, got ${printType(ids)}`);
      if (table.shape.length < 1) return opError('TFC203', `cannot gather from a scalar ${printType(table)}`);
      return { dtype: table.dtype, shape: [...ids.shape, ...table.shape.slice(1)] };
    },
    interp: (operands, ctx) => {
      const [table, ids] = operands;
      if (table === undefined || ids === undefined) throw new Error('internal: gather needs 2 operands');
      const rows = table.shape[0] ?? 0;
      const rowSize = numel(table.shape.slice(1));
      const out = makeTensor(table.dtype, ctx.shape);
      for (let i = 0; i < ids.data.length; i++) {
        const id = ids.data[i] ?? NaN;
        if (!(Number.isInteger(id) && id >= 0 && id < rows)) {
          throw new InterpError(
            'TFC309',
            `gather index ${id} is out of range [0, ${rows}) for table [${table.shape.join(',')}]`,
            ctx.node.loc,
          );
        }
        out.data.set(table.data.subarray(id * rowSize, (id + 1) * rowSize), i * rowSize);
      }
      return out;
    },
    // The rows' cotangents added into a zero table at the same indices.
    vjp: (g, a) => {
      const [table, ids] = a.x;
      if (table === undefined || ids === undefined || a.needs[0] !== true) return [undefined, undefined];
      const rows = g.type(table).shape[0] ?? dimConst(0);
      return [g.node('scatter_add', [a.dy, ids], { rows: { kind: 'dim', value: rows } }), undefined];
    },
    flops: zeroFlops,
    lowering: 'unfused',
  }),
  scatterAddOp,
  scatterOp,
];
