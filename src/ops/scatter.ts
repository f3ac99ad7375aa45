// scatter_add: the transpose of gather (an embedding's gradient). Rows of `updates` are added into
// a zero table of `rows` rows at the rows `indices` name; indices that repeat add up, in index
// order (deterministic, no atomics needed: docs/autodiff.md).
//
//   %9 = scatter_add %dy, %tokens {rows=dim(256)} : f32[256,64]     (%dy: f32[B,T,64], %tokens: i32[B,T])
import { type Dim, dimEquals, printDim } from '../base/dim.js';
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
