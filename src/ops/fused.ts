// Fused ops, made only by the fusion passes (src/passes/fuse-*.ts), never written by users:
// `fused_map` (a chain of elementwise ops as one lambda over its operands), `fused_matmul` (a
// matmul whose epilogue lambda runs on the accumulator before the store), `fused_reduce` (a
// sum or max of an elementwise chain, with an epilogue) and `acc`, the accumulator inside
// those epilogues. The float64 rules reuse `grid` and `matmul` (naive on purpose).
import { type Dim, dimAdd, dimConst, dimConstValue, dimEval, dimMul } from '../base/dim.js';
import { InternalError } from '../diag/diagnostic.js';
import { type Attrs, type Node, type ScalarExpr, dimsAttr, lambdaAttr } from '../graph/ir.js';
import { lambdaVjp } from './lambda-grad.js';
import { type TensorType, printType } from '../graph/types.js';
import { type GradBuilder, type OpDef, type VjpArgs, defineOp } from './define.js';
import type { Tensor64 } from '../base/tensor.js';
import { numelDim, opError } from './elementwise.js';
import { inferMatmul, matmulOps } from './matmul.js';
import { checkGridBody, countApplies, scalarExprDtype, sourceOps } from './source.js';
import { normOps } from './norm.js';
import { reduceOps, reduceShape } from './reduce.js';
import { foldScalarExpr, idx, mapScalarExpr } from '../graph/lambda.js';

/**
 * `acc()` rewritten as `read(operand, i0, i1, ...)` (the identity index of the result): the
 * epilogue is then an ordinary grid body over the operands plus the product tensor. A paired
 * epilogue (`pairHalf`: the result's last dim N) reads `acc_pair()` at `(..., i_last + N)`.
 */
export function accAsRead(e: ScalarExpr, operand: number, rank: number, dtype: TensorType['dtype'], pairHalf?: Dim): ScalarExpr {
  const at = (shift: boolean): ScalarExpr[] =>
    Array.from({ length: rank }, (_, axis) => (shift && axis === rank - 1 && pairHalf !== undefined ? { kind: 'apply', op: 'add', args: [idx(axis), { kind: 'dim', dim: pairHalf }], dtype: 'i32' } : idx(axis)));
  return mapScalarExpr(e, (x) => (x.kind === 'apply' && (x.op === 'acc' || x.op === 'acc_pair') ? { kind: 'read', operand, indices: at(x.op === 'acc_pair'), dtype } : undefined));
}

/**
 * A paired fused_matmul (`pair`, fuse-epilogue: silu(gate) * up over a packed gate/up product):
 * the product has 2N columns, the result N; `acc()` is product column j, `acc_pair()` column N + j.
 * The half N of a product's last dim, or an error message.
 */
export function pairHalfOf(attrs: Attrs, product: TensorType): Dim | undefined | string {
  const p = attrs['pair'];
  if (p === undefined || p.kind !== 'bool' || !p.value) return undefined;
  const n = dimConstValue(product.shape[product.shape.length - 1] ?? dimConst(0));
  if (n === undefined || n % 2 !== 0) return `a paired fused_matmul needs a product whose last dim is a constant even number, got ${printType(product)}`;
  return dimConst(n / 2);
}

function op(name: string, ops: readonly OpDef[]): OpDef {
  const o = ops.find((x) => x.name === name);
  if (o === undefined) throw new InternalError(`fused ops need '${name}'`);
  return o;
}
const gridOp = op('grid', sourceOps);
const matmulOp = op('matmul', matmulOps);
const reduceKinds: Readonly<Record<string, OpDef>> = { sum: op('sum', reduceOps), max: op('max_reduce', reduceOps) };

/** fused_matmul's norm prologue (fuse-norm): the norm's op and how many trailing operands it takes. */
export function normPrologueOf(attrs: Attrs): { readonly op: 'layernorm' | 'rmsnorm'; readonly params: number; readonly eps: number } | undefined {
  const n = attrs['norm'];
  if (n === undefined || n.kind !== 'str' || (n.value !== 'layernorm' && n.value !== 'rmsnorm')) return undefined;
  const e = attrs['eps'];
  return { op: n.value, params: n.value === 'layernorm' ? 2 : 1, eps: e !== undefined && e.kind === 'float' ? e.value : 0 };
}

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
    vjp: (g, a) => {
      const l = lambdaAttr(a.node, 'body');
      return lambdaVjp(g, a, l.params, l.body, dimsAttr(a.node, 'shape'));
    },
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
    optionalAttrs: { norm: 'str', eps: 'float', pair: 'bool' },
    doc: '`a @ b` (operands 0, 1) with the `epilogue` lambda over the result indices applied before the store; `acc()` is the product, `read(i, ...)` reads operand i >= 2; with `norm` ("layernorm"/"rmsnorm", `eps`), a is normalized over its last axis first, gamma (and beta) being the last operands; with `pair`, the product has 2N columns and the result N: `acc()` is product column j, `acc_pair()` column N + j (silu(gate) * up over a packed gate/up weight)',
    infer: (operands, attrs) => {
      const [a, b] = operands;
      const ep = attrs['epilogue'];
      if (a === undefined || b === undefined) return opError('TFC104', `fused_matmul takes at least 2 operands, got ${operands.length}`);
      if (ep === undefined || ep.kind !== 'lambda') return opError('TFC216', `fused_matmul needs an 'epilogue' lambda`);
      const norm = normPrologueOf(attrs);
      if (attrs['norm'] !== undefined && (norm === undefined || attrs['eps']?.kind !== 'float')) return opError('TFC216', `fused_matmul's norm is "layernorm" or "rmsnorm", with an 'eps'`);
      if (norm !== undefined) {
        if (operands.length < 2 + norm.params) return opError('TFC104', `fused_matmul with ${norm.op} needs its ${norm.params} parameter operand(s) last`);
        const r = normOp(norm.op).infer([a, ...operands.slice(operands.length - norm.params)], { eps: { kind: 'float', value: norm.eps } });
        if ('code' in r) return r;
      }
      const mm = inferMatmul(a, b);
      if ('code' in mm) return mm;
      const rank = mm.shape.length;
      if (ep.params.length !== rank) return opError('TFC216', `fused_matmul of rank ${rank} has an epilogue of ${ep.params.length} indices`);
      const half = pairHalfOf(attrs, mm);
      if (typeof half === 'string') return opError('TFC216', half);
      const body = accAsRead(ep.body, operands.length, rank, mm.dtype, half);
      const shape = half === undefined ? mm.shape : [...mm.shape.slice(0, -1), half];
      const err = checkGridBody(body, rank, [...operands, mm]);
      if (err !== undefined) return err;
      return { dtype: scalarExprDtype(body), shape };
    },
    interp: (operands, ctx) => {
      const [a, b] = operands;
      if (a === undefined || b === undefined) throw new InternalError('fused_matmul needs 2 operands');
      const ep = ctx.node.attrs['epilogue'];
      if (ep === undefined || ep.kind !== 'lambda') throw new InternalError('fused_matmul lacks its epilogue');
      // Paired: the result's last dim is the half N; the product has 2N columns.
      const shape = ctx.node.type.shape;
      const half = ctx.node.attrs['pair']?.kind === 'bool' && ctx.node.attrs['pair'].value ? (shape[shape.length - 1] ?? dimConst(0)) : undefined;
      const productShape = half === undefined ? shape : [...shape.slice(0, -1), dimMul(dimConst(2), half)];
      const productType: TensorType = { dtype: a.dtype, shape: productShape };
      const norm = normPrologueOf(ctx.node.attrs);
      const x =
        norm === undefined
          ? a
          : normOp(norm.op).interp([a, ...operands.slice(operands.length - norm.params)], {
              ...ctx,
              node: { ...ctx.node, op: norm.op, attrs: { eps: { kind: 'float', value: norm.eps } }, type: { dtype: a.dtype, shape: [] } },
              shape: a.shape,
            });
      const productDims = half === undefined ? ctx.shape : [...ctx.shape.slice(0, -1), 2 * (ctx.shape[ctx.shape.length - 1] ?? 0)];
      const product = matmulOp.interp([x, b], { ...ctx, node: { ...ctx.node, op: 'matmul', attrs: {}, type: productType }, shape: productDims });
      const body = accAsRead(ep.body, operands.length, ctx.shape.length, a.dtype, half);
      return evalLambda(ctx.node, ep.params, body, [...operands, product], ctx.dims, ctx.shape);
    },
    vjp: (g, a) => fusedMatmulVjp(g, a),
    // The matmul's 2*K per result element, plus one per elementwise apply of the epilogue.
    flops: (operands, result, attrs) => {
      const a = operands[0];
      const k = a?.shape[a.shape.length - 1] ?? dimConst(0);
      const ep = attrs['epilogue'];
      const perElement = ep !== undefined && ep.kind === 'lambda' ? countApplies(ep.body) : 0;
      // Paired: 2 products (gate, up) per result element.
      const products = attrs['pair']?.kind === 'bool' && attrs['pair'].value ? 2 : 1;
      const mm = dimMul(numelDim(result.shape), dimAdd(dimMul(dimConst(2 * products), k), dimConst(perElement)));
      const norm = normPrologueOf(attrs);
      if (norm === undefined || a === undefined) return mm;
      // The norm's own FLOPs (as the norm op would count them); the kernel's redundant per-thread
      // statistics and gamma/beta @ W (src/kernel/matmul/norm-prologue.ts) are not counted.
      return dimAdd(mm, normOp(norm.op).flops([a, ...operands.slice(operands.length - norm.params)], a, { eps: { kind: 'float', value: norm.eps } }));
    },
    lowering: 'fused-only',
  }),
  defineOp({
    name: 'view',
    family: 'fused',
    arity: 1,
    attrs: { shape: 'dims', map: 'lambda' },
    doc: 'movement without a copy (fold-views): the element at the result index is `read(0, ...)` of the operand at the `map` lambda\'s index expressions; lowers to no kernel, its consumers read the operand\'s buffer through the map',
    infer: (operands, attrs) => {
      const s = attrs['shape'];
      const m = attrs['map'];
      const [x] = operands;
      if (x === undefined || s === undefined || s.kind !== 'dims' || m === undefined || m.kind !== 'lambda') return opError('TFC216', `view needs one operand, 'shape' dims and a 'map' lambda`);
      if (m.params.length !== s.value.length) return opError('TFC216', `view of rank ${s.value.length} has a map of ${m.params.length} indices`);
      if (m.body.kind !== 'read' || m.body.operand !== 0 || !m.body.indices.every(isIndexArith)) return opError('TFC216', `a view's map is read(0, ...) at index arithmetic (add, sub, mul, div, mod of indices, dims, i32 constants)`);
      const err = checkGridBody(m.body, s.value.length, operands);
      if (err !== undefined) return err;
      return { dtype: x.dtype, shape: s.value };
    },
    interp: (operands, ctx) => gridOp.interp(operands, { ...ctx, node: { ...ctx.node, attrs: { shape: ctx.node.attrs['shape'] ?? { kind: 'dims', value: [] }, body: ctx.node.attrs['map'] ?? { kind: 'lambda', params: [], body: { kind: 'const', value: 0, dtype: 'f32' } } } } }),
    vjp: (g, a) => {
      const m = lambdaAttr(a.node, 'map');
      return lambdaVjp(g, a, m.params, m.body, dimsAttr(a.node, 'shape'));
    },
    flops: () => dimConst(0),
    lowering: 'fused-only',
  }),
  defineOp({
    name: 'fused_reduce',
    family: 'fused',
    arity: 'variadic',
    attrs: { shape: 'dims', body: 'lambda', reduce: 'str', axes: 'ints', keepdims: 'bool', epilogue: 'lambda' },
    doc: '`reduce` ("sum" or "max") over `axes` of the lambda `body` evaluated on `shape` (the elementwise chain the reduction read, as one lambda over its indices), then the `epilogue` lambda over the result indices (`acc()` is the reduced value); `read(i, ...)` reads operand i in either lambda',
    noGrad: 'made by fuse-reduce after differentiation (grad runs on the unfused graph)',
    infer: (operands, attrs) => {
      const s = attrs['shape'];
      const body = attrs['body'];
      const ep = attrs['epilogue'];
      const kind = attrs['reduce'];
      if (s === undefined || s.kind !== 'dims' || body === undefined || body.kind !== 'lambda' || ep === undefined || ep.kind !== 'lambda') return opError('TFC216', `fused_reduce needs 'shape' dims, a 'body' and an 'epilogue' lambda`);
      if (kind === undefined || kind.kind !== 'str' || reduceKinds[kind.value] === undefined) return opError('TFC216', `fused_reduce's reduce is "sum" or "max"`);
      if (body.params.length !== s.value.length) return opError('TFC216', `fused_reduce over rank ${s.value.length} has a body of ${body.params.length} indices`);
      const err = checkGridBody(body.body, s.value.length, operands);
      if (err !== undefined) return err;
      const x: TensorType = { dtype: scalarExprDtype(body.body), shape: s.value };
      if (x.dtype !== 'f32' && x.dtype !== 'f16' && x.dtype !== 'bf16') return opError('TFC207', `fused_reduce reduces floats, got ${x.dtype}`);
      const axes = attrs['axes'];
      const keep = attrs['keepdims'];
      if (axes === undefined || axes.kind !== 'ints' || keep === undefined || keep.kind !== 'bool') return opError('TFC216', `fused_reduce needs 'axes' and 'keepdims'`);
      const shape = reduceShape('fused_reduce', x, axes.value, keep.value);
      if (!Array.isArray(shape)) return shape as ReturnType<typeof opError>;
      if (ep.params.length !== shape.length) return opError('TFC216', `fused_reduce of rank ${shape.length} has an epilogue of ${ep.params.length} indices`);
      const epBody = accAsRead(ep.body, operands.length, shape.length, x.dtype);
      const epErr = checkGridBody(epBody, shape.length, [...operands, { dtype: x.dtype, shape }]);
      if (epErr !== undefined) return epErr;
      return { dtype: scalarExprDtype(epBody), shape };
    },
    // Naive on purpose: the body as a grid over `shape`, the catalog's reduction, the epilogue as a grid.
    interp: (operands, ctx) => {
      const n = ctx.node;
      const shape = dimsAttr(n, 'shape');
      const body = lambdaAttr(n, 'body');
      const ep = lambdaAttr(n, 'epilogue');
      const kindAttr = n.attrs['reduce'];
      const reduceDef = kindAttr?.kind === 'str' ? reduceKinds[kindAttr.value] : undefined;
      if (reduceDef === undefined) throw new InternalError('fused_reduce lacks its reduce kind');
      const xShape = shape.map((d) => {
        const v = dimEval(d, ctx.dims);
        if (v === undefined) throw new InternalError(`fused_reduce: unbound dim in its shape`);
        return v;
      });
      const xType: TensorType = { dtype: 'f32', shape };
      const x = gridOp.interp(operands, { ...ctx, node: { ...n, op: 'grid', attrs: { shape: { kind: 'dims', value: shape }, body }, type: xType }, shape: xShape });
      const reduced = reduceDef.interp([x], { ...ctx, node: { ...n, op: reduceDef.name, attrs: { axes: n.attrs['axes'] ?? { kind: 'ints', value: [] }, keepdims: n.attrs['keepdims'] ?? { kind: 'bool', value: false } }, type: { dtype: 'f32', shape: n.type.shape } } });
      return evalLambda(n, ep.params, accAsRead(ep.body, operands.length, ctx.shape.length, 'f32'), [...operands, reduced], ctx.dims, ctx.shape);
    },
    // The body's applies per input element, one add or compare per input element, the epilogue's per result.
    flops: (_operands, result, attrs) => {
      const body = attrs['body'];
      const ep = attrs['epilogue'];
      const s = attrs['shape'];
      const inner = numelDim(s !== undefined && s.kind === 'dims' ? s.value : []);
      const perIn = 1 + (body !== undefined && body.kind === 'lambda' ? countApplies(body.body) : 0);
      return dimAdd(dimMul(dimConst(perIn), inner), dimMul(dimConst(ep !== undefined && ep.kind === 'lambda' ? countApplies(ep.body) : 0), numelDim(result.shape)));
    },
    lowering: 'fused-only',
  }),
  placeholderOp('acc', 'a fused_matmul epilogue', 'the matmul product at the current result index (dtype of the matmul operands)'),
  placeholderOp('acc_pair', 'a paired fused_matmul epilogue', 'the product at column N + j for result column j (the up half of a packed gate/up product)'),
];

/**
 * A zero-argument op that only names, inside a fused op's lambda, a value the fused op computes
 * itself (`acc()`, `score()`): it has no interpreter rule of its own and costs no FLOPs.
 */
export function placeholderOp(name: string, where: string, meaning: string): OpDef {
  return defineOp({
    name,
    family: 'fused',
    arity: 0,
    attrs: {},
    doc: `inside ${where} only: ${meaning}`,
    infer: () => ({ dtype: 'f32', shape: [] }),
    interp: () => {
      throw new InternalError(`${name}() is only meaningful inside ${where}`);
    },
    noGrad: `a name inside ${where}, never a graph node`,
    flops: () => dimConst(0),
    lowering: 'none',
  });
}

const indexOps: ReadonlySet<string> = new Set(['add', 'sub', 'mul', 'div', 'mod']);
/** Whether `e` is i32 index arithmetic (what a view map may compute). */
function isIndexArith(e: ScalarExpr): boolean {
  return foldScalarExpr<boolean>(e, (x, inner) => {
    switch (x.kind) {
      case 'index':
      case 'dim':
        return true;
      case 'const':
        return x.dtype === 'i32' && Number.isInteger(x.value) && x.value >= 0;
      case 'read':
        return false;
      case 'apply':
        return x.dtype === 'i32' && indexOps.has(x.op) && inner.every(Boolean);
    }
  });
}

/**
 * fused_matmul's vjp, composed from the catalog's rules: the product (and the normalized A) is
 * recomputed, the epilogue lambda differentiated with the product as one more operand, then the
 * matmul's and the norm's vjps carry the product's cotangent to A, B and gamma (beta).
 */
function fusedMatmulVjp(g: GradBuilder, a: VjpArgs): (number | undefined)[] {
  const [x0, w] = a.x;
  if (x0 === undefined || w === undefined) throw new InternalError('fused_matmul needs 2 operands');
  // Paired epilogues come from pack-weights, which no differentiated pipeline runs.
  if (a.node.attrs['pair'] !== undefined) throw new InternalError('fused_matmul: no vjp for a paired epilogue');
  const norm = normPrologueOf(a.node.attrs);
  const params = norm === undefined ? [] : a.x.slice(a.x.length - norm.params);
  const normAttrs: Attrs = { eps: { kind: 'float', value: norm?.eps ?? 0 } };
  const x = norm === undefined ? x0 : g.node(norm.op, [x0, ...params], normAttrs);
  const product = g.node('matmul', [x, w]);
  const ep = lambdaAttr(a.node, 'epilogue');
  const rank = g.type(a.y).shape.length;
  const body = accAsRead(ep.body, a.x.length, rank, g.type(product).dtype);
  const needs = [false, false, ...a.needs.slice(2), true];
  const lam = lambdaVjp(g, { ...a, x: [...a.x, product], needs }, ep.params, body, g.type(a.y).shape);
  const dProduct = lam[a.x.length];
  if (dProduct === undefined) throw new InternalError('fused_matmul: no cotangent for the product');
  const needX = a.needs[0] === true || (norm !== undefined && a.needs.slice(a.x.length - norm.params).some(Boolean));
  const mm = vjpOf(matmulOp)(g, { node: { ...a.node, op: 'matmul', operands: [x, w], attrs: {}, type: g.type(product) }, x: [x, w], y: product, dy: dProduct, needs: [needX, a.needs[1] === true] });
  const out: (number | undefined)[] = lam.slice(0, a.x.length);
  out[1] = mm[1];
  const dx = mm[0];
  if (norm === undefined || dx === undefined) {
    out[0] = dx;
    return out.map((v, i) => (a.needs[i] === true ? v : undefined));
  }
  const nOp = normOp(norm.op);
  const nNeeds = [a.needs[0] === true, ...a.needs.slice(a.x.length - norm.params).map((v) => v === true)];
  const nv = vjpOf(nOp)(g, { node: { ...a.node, op: norm.op, attrs: normAttrs, type: g.type(x) }, x: [x0, ...params], y: x, dy: dx, needs: nNeeds });
  out[0] = nv[0];
  params.forEach((_, i) => {
    const k = a.x.length - norm.params + i;
    const v = nv[1 + i];
    const prev = out[k];
    // A norm parameter the epilogue also reads gets both cotangents.
    out[k] = prev === undefined ? v : v === undefined ? prev : g.op('add', prev, v);
  });
  return out.map((v, i) => (a.needs[i] === true ? v : undefined));
}

function vjpOf(op: OpDef): NonNullable<OpDef['vjp']> {
  if (op.vjp === undefined) throw new InternalError(`${op.name} has no vjp`);
  return op.vjp;
}

function normOp(name: 'layernorm' | 'rmsnorm'): OpDef {
  return op(name, normOps);
}
