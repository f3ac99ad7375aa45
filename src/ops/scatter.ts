// scatter_add: the transpose of gather (an embedding's gradient). Rows of `updates` are added into
// a zero table of `rows` rows at the rows `indices` name; indices that repeat add up, in index
// order (deterministic, no atomics needed: docs/autodiff.md).
//
//   %9 = scatter_add %dy, %tokens {rows=dim(256)} : f32[256,64]     (%dy: f32[B,T,64], %tokens: i32[B,T])
//
// scatter: a tensor with some elements replaced (the `scatter` builtin; a paged KV cache's write):
// dest with element index[i] (a flat row-major offset) set to values[i]. Kernels write it in
// place, in dest's buffer, when nothing reads dest later (src/kernel/lower/scatter.ts).
//
//   %27 = scatter %3, %26, %17 : f32[NP,2,16,16]     (%26: i32[B,T,2,16] offsets, %17: f32[B,T,2,16])
import { type Dim, dimConst, dimEquals, printDim } from '../base/dim.js';
import { dimAttr } from '../graph/ir.js';
import { printType } from '../graph/types.js';
import { makeTensor, numel } from '../base/tensor.js';
import { InterpError } from './errors.js';
import { type OpDef, defineOp } from './define.js';
import { numelDim, opError } from './elementwise.js';

export const scatterAddOp: OpDef = defineOp({
  name: 'scatter_add',
  family: 'movement',
  arity: 2,
  attrs: { rows: 'dim' },
  doc: 'the transpose of gather: updates [...I, ...] added into a zero [rows, ...] table at the rows of the i32 indices [...I]; repeated indices add up in index order; an index outside [0, rows) is an error (TFC309)',
  infer: (operands, attrs) => {
    const [updates, ids] = operands;
    if (updates === undefined || ids === undefined || operands.length !== 2) return opError('TFC104', `scatter_add takes 2 operands, got ${operands.length}`);
    if (ids.dtype !== 'i32') return opError('TFC208', `scatter_add needs i32 indices, got ${printType(ids)}`);
    const rows = attrs['rows'];
    if (rows === undefined || rows.kind !== 'dim') return opError('TFC110', `scatter_add needs a dim attribute 'rows'`);
    const lead = updates.shape.slice(0, ids.shape.length);
    if (lead.length !== ids.shape.length || lead.some((d, i) => !dimEquals(d, ids.shape[i] as Dim))) {
      return opError('TFC201', `scatter_add updates ${printType(updates)} do not start with the indices' shape ${printType(ids)}`);
    }
    return { dtype: updates.dtype, shape: [rows.value, ...updates.shape.slice(ids.shape.length)] };
  },
  interp: (operands, ctx) => {
    const [updates, ids] = operands;
    if (updates === undefined || ids === undefined) throw new Error('internal: scatter_add needs 2 operands');
    const rows = ctx.shape[0] ?? 0;
    const rowSize = numel(ctx.shape.slice(1));
    const out = makeTensor(updates.dtype, ctx.shape);
    for (let i = 0; i < ids.data.length; i++) {
      const id = ids.data[i] ?? NaN;
      if (!(Number.isInteger(id) && id >= 0 && id < rows)) {
        throw new InterpError('TFC309', `scatter_add index ${id} is out of range [0, ${rows}) (rows ${printDim(dimAttr(ctx.node, 'rows'))})`, ctx.node.loc);
      }
      for (let j = 0; j < rowSize; j++) out.data[id * rowSize + j] = (out.data[id * rowSize + j] ?? 0) + (updates.data[i * rowSize + j] ?? 0);
    }
    return out;
  },
  // The transpose of scatter-add is gather: each update row reads its table row's cotangent.
  vjp: (g, a) => {
    const [, ids] = a.x;
    if (ids === undefined || a.needs[0] !== true) return [undefined, undefined];
    return [g.node('gather', [a.dy, ids]), undefined];
  },
  // One add per update element.
  flops: (operands) => numelDim(operands[0]?.shape ?? []),
  lowering: 'unfused',
});

export const scatterOp: OpDef = defineOp({
  name: 'scatter',
  family: 'movement',
  arity: 3,
  attrs: {},
  doc:
    'dest with element index[i] (a flat row-major offset into dest) replaced by values[i], for every element i of values: dest [...D], i32 index and values of one shape [...V] -> [...D]; ' +
    'an index outside [0, numel(dest)) is an error (TFC309); of two equal indices one value is kept (the interpreter: the last). Kernels write dest in place when nothing reads it later',
  infer: (operands) => {
    const [dest, index, values] = operands;
    if (dest === undefined || index === undefined || values === undefined || operands.length !== 3) {
      return opError('TFC104', `scatter takes 3 operands (dest, index, values), got ${operands.length}`);
    }
    if (index.dtype !== 'i32') return opError('TFC208', `scatter needs i32 indices, got ${printType(index)}`);
    if (values.dtype !== dest.dtype) return opError('TFC202', `scatter writes ${printType(values)} into ${printType(dest)}: the dtypes differ`);
    if (index.shape.length !== values.shape.length || index.shape.some((d, k) => !dimEquals(d, values.shape[k] ?? d))) {
      return opError('TFC201', `scatter's index ${printShape(index.shape)} and values ${printShape(values.shape)} must have one shape`);
    }
    return dest;
  },
  interp: (operands, ctx) => {
    const [dest, index, values] = operands;
    if (dest === undefined || index === undefined || values === undefined) throw new Error('internal: scatter needs 3 operands');
    const out = makeTensor(dest.dtype, dest.shape, dest.data);
    for (let i = 0; i < index.data.length; i++) {
      const at = index.data[i] ?? NaN;
      if (!(Number.isInteger(at) && at >= 0 && at < out.data.length)) {
        throw new InterpError('TFC309', `scatter index ${at} is out of range [0, ${out.data.length}) for dest [${dest.shape.join(',')}]`, ctx.node.loc);
      }
      out.data[at] = values.data[i] ?? NaN;
    }
    return out;
  },
  // Assumes distinct offsets (a cache write): an overwritten element of dest gets no gradient,
  // each value the cotangent at its offset. (With repeated offsets only the kept value's is right.)
  vjp: (g, a) => {
    const [dest, index, values] = a.x;
    if (dest === undefined || index === undefined || values === undefined) return [undefined, undefined, undefined];
    const dDest = a.needs[0] === true ? g.node('scatter', [a.dy, index, g.zeros(g.type(values))]) : undefined;
    const flat = numelDim(g.type(a.dy).shape);
    const dValues = a.needs[2] === true ? g.node('gather', [g.node('reshape', [a.dy], { shape: { kind: 'dims', value: [flat] } }), index]) : undefined;
    return [dDest, undefined, dValues];
  },
  flops: () => dimConst(0),
  lowering: 'unfused',
});

function printShape(shape: readonly Dim[]): string {
  return `[${shape.map((d) => printDim(d, true)).join(',')}]`;
}
