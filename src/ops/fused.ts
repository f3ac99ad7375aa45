// Fused ops, made only by the fusion passes (src/passes/fuse-*.ts), never written by users:
// `fused_map` (a chain of elementwise ops as one lambda over its operands), `fused_matmul` (a
// matmul whose epilogue lambda runs on the accumulator before the store) and `acc`, the
// accumulator inside that epilogue. The float64 rules reuse `grid` and `matmul` (naive on purpose).
import { dimAdd, dimConst, dimMul } from '../check/dim.js';
import { InternalError } from '../diag/diagnostic.js';
import type { Attrs, Node, ScalarExpr } from '../graph/ir.js';
import type { TensorType } from '../graph/types.js';
import { type OpDef, type Tensor64, defineOp } from './define.js';
import { numelDim, opError } from './elementwise.js';
import { inferMatmul, matmulOps } from './matmul.js';
import { checkGridBody, scalarExprDtype, sourceOps } from './source.js';

/** Elementwise applies in a lambda body (`acc()` is free): the per-element FLOPs. */
export function countApplies(e: ScalarExpr): number {
  switch (e.kind) {
    case 'index':
    case 'dim':
    case 'const':
      return 0;
    case 'read':
      return e.indices.reduce((n, i) => n + countApplies(i), 0);
    case 'apply':
      return (e.op === 'acc' ? 0 : 1) + e.args.reduce((n, a) => n + countApplies(a), 0);
  }
}

/**
 * `acc()` rewritten as `read(operand, i0, i1, ...)` (the identity index of the result): the
 * epilogue is then an ordinary grid body over the operands plus the product tensor.
 */
export function accAsRead(e: ScalarExpr, operand: number, rank: number, dtype: TensorType['dtype']): ScalarExpr {
  switch (e.kind) {
    case 'index':
    case 'dim':
    case 'const':
      return e;
    case 'read':
      return { ...e, indices: e.indices.map((i) => accAsRead(i, operand, rank, dtype)) };
    case 'apply':
      if (e.op === 'acc') {
        const indices: ScalarExpr[] = Array.from({ length: rank }, (_, axis) => ({ kind: 'index', axis }));
        return { kind: 'read', operand, indices, dtype };
      }
      return { ...e, args: e.args.map((a) => accAsRead(a, operand, rank, dtype)) };
  }
}

function op(name: string, ops: readonly OpDef[]): OpDef {
  const o = ops.find((x) => x.name === name);
  if (o === undefined) throw new InternalError(`fused ops need '${name}'`);
  return o;
}
const gridOp = op('grid', sourceOps);
const matmulOp = op('matmul', matmulOps);

/** Evaluates a lambda `body` over `shape` through grid's float64 rule. */
function evalLambda(node: Node, params: readonly string[], body: ScalarExpr, operands: readonly Tensor64[], dims: ReadonlyMap<string, number>, shape: readonly number[]): Tensor64 {
  const attrs: Attrs = { shape: { kind: 'dims', value: node.type.shape }, body: { kind: 'lambda', params, body } };
  return gridOp.interp(operands, { node: { ...node, op: 'grid', attrs }, dims, shape });
}

export const fusedOps: readonly OpDef[] = [
  defineOp({
    name: 'fused_map',
    family: 'fused',
    arity: 'variadic',
    attrs: { shape: 'dims', body: 'lambda' },
    doc: 'elementwise chain as one lambda over the result indices; `read(i, ...)` reads operand i (broadcast axes read index 0 or are dropped)',
    infer: (operands, attrs) => {
      const s = attrs['shape'];
      const body = attrs['body'];
      if (s === undefined || s.kind !== 'dims' || body === undefined || body.kind !== 'lambda') return opError('TFC216', `fused_map needs 'shape' dims and a 'body' lambda`);
      if (body.params.length !== s.value.length) return opError('TFC216', `fused_map of rank ${s.value.length} has a lambda of ${body.params.length} indices`);
      const err = checkGridBody(body.body, s.value.length, operands);
      if (err !== undefined) return err;
      return { dtype: scalarExprDtype(body.body), shape: s.value };
    },
    interp: (operands, ctx) => gridOp.interp(operands, ctx),
    flops: (_operands, result, attrs) => {
      const body = attrs['body'];
      return dimMul(dimConst(body !== undefined && body.kind === 'lambda' ? countApplies(body.body) : 0), numelDim(result.shape));
    },
    lowering: 'fused-only',
  }),
  defineOp({
    name: 'fused_matmul',
    family: 'fused',
    arity: 'variadic',
    attrs: { epilogue: 'lambda' },
    doc: '`a @ b` (operands 0, 1) with the `epilogue` lambda over the result indices applied before the store; `acc()` is the product, `read(i, ...)` reads operand i >= 2',
    infer: (operands, attrs) => {
      const [a, b] = operands;
      const ep = attrs['epilogue'];
      if (a === undefined || b === undefined) return opError('TFC104', `fused_matmul takes at least 2 operands, got ${operands.length}`);
      if (ep === undefined || ep.kind !== 'lambda') return opError('TFC216', `fused_matmul needs an 'epilogue' lambda`);
      const mm = inferMatmul(a, b);
      if ('code' in mm) return mm;
      const rank = mm.shape.length;
      if (ep.params.length !== rank) return opError('TFC216', `fused_matmul of rank ${rank} has an epilogue of ${ep.params.length} indices`);
      const body = accAsRead(ep.body, operands.length, rank, mm.dtype);
      const err = checkGridBody(body, rank, [...operands, mm]);
      if (err !== undefined) return err;
      return { dtype: scalarExprDtype(body), shape: mm.shape };
    },
    interp: (operands, ctx) => {
      const [a, b] = operands;
      if (a === undefined || b === undefined) throw new InternalError('fused_matmul needs 2 operands');
      const ep = ctx.node.attrs['epilogue'];
      if (ep === undefined || ep.kind !== 'lambda') throw new InternalError('fused_matmul lacks its epilogue');
      const productType: TensorType = { dtype: a.dtype, shape: ctx.node.type.shape };
      const product = matmulOp.interp([a, b], { ...ctx, node: { ...ctx.node, op: 'matmul', attrs: {}, type: productType } });
      const body = accAsRead(ep.body, operands.length, ctx.shape.length, a.dtype);
      return evalLambda(ctx.node, ep.params, body, [...operands, product], ctx.dims, ctx.shape);
    },
    // The matmul's 2*K per result element, plus one per elementwise apply of the epilogue.
    flops: (operands, result, attrs) => {
      const a = operands[0];
      const k = a?.shape[a.shape.length - 1] ?? dimConst(0);
      const ep = attrs['epilogue'];
      const perElement = ep !== undefined && ep.kind === 'lambda' ? countApplies(ep.body) : 0;
      return dimMul(numelDim(result.shape), dimAdd(dimMul(dimConst(2), k), dimConst(perElement)));
    },
    lowering: 'fused-only',
  }),
  defineOp({
    name: 'acc',
    family: 'fused',
    arity: 0,
    attrs: {},
    doc: 'inside a fused_matmul epilogue only: the matmul product at the current result index (dtype of the matmul operands)',
    infer: () => ({ dtype: 'f32', shape: [] }),
    interp: () => {
      throw new InternalError('acc() is only meaningful inside a fused_matmul epilogue');
    },
    flops: () => dimConst(0),
    lowering: 'none',
  }),
];
