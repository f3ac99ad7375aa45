// The lambdas of a fused_attention node (score, mask, qload, kload) as inline kernel expressions,
// the Q and K types they imply, and the bytes their reads move (lower-attention.ts's kernels).
import type { Graph, Node, ScalarExpr } from '../graph/ir.js';
import type { TensorType } from '../graph/types.js';
import { attentionKeyType, attentionQueryType } from '../ops/attention.js';
import { isLazyWhere } from '../graph/lambda.js';
import { type Expr, type Stmt, add, cast, exprType, lit, load, mul, u32, v } from './ir.js';
import { KernelBuilder } from './builder.js';
import { dimExpr } from './lower-dims.js';
import { scalarLowering } from './lower-scalar.js';
import { elementOffset } from './lower-view.js';
import { computeType, storageBytes, storageType } from './storage.js';

export function lambdaOf(n: Node, key: string): ScalarExpr | undefined {
  const a = n.attrs[key];
  return a !== undefined && a.kind === 'lambda' ? a.body : undefined;
}

/** Q's type: operand 0's, or `qshape` when a `qload` lambda computes Q at load (src/ops/attention.ts). */
export function queryType(q: Node, n: Node): TensorType {
  const t = attentionQueryType(q.type, n.attrs);
  if (t === undefined) throw new Error('internal: fused_attention qload without qshape');
  return t;
}

/** K's type: operand 1's, or `kshape` when a `kload` lambda computes K at load (src/ops/attention.ts). */
export function keyType(k: Node, n: Node): TensorType {
  const t = attentionKeyType(k.type, n.attrs);
  if (t === undefined) throw new Error('internal: fused_attention kload without kshape');
  return t;
}

export interface Compiled {
  readonly kb: KernelBuilder;
  readonly slotOf: (operand: number) => number;
}

/** A score or mask lambda as an inline kernel expression; `score()` is `scoreVar`. */
export function lambdaExpr(c: Compiled, g: Graph, n: Node, out: Stmt[], e: ScalarExpr, idx: readonly Expr[], scoreVar: Expr | undefined): Expr {
  const tr = (x: ScalarExpr): Expr => lambdaExpr(c, g, n, out, x, idx, scoreVar);
  switch (e.kind) {
    case 'index':
      return cast('i32', idx[e.axis] ?? u32(0));
    case 'dim':
      return cast('i32', dimExpr(e.dim));
    case 'const':
      return lit(computeType(e.dtype), e.value);
    case 'read': {
      const id = n.operands[e.operand];
      const o = id === undefined ? undefined : g.nodes[id];
      if (o === undefined) throw new Error(`internal: fused_attention lambda reads missing operand ${e.operand}`);
      const slot = c.slotOf(e.operand);
      // A qload's operand 0 may be a view (fold-views: the projection read in head layout).
      if (o.op === 'view') return cast(computeType(e.dtype), load(slot, elementOffset(g, o, e.indices.map((ix) => cast('u32', tr(ix))), dimExpr), storageType(o.type.dtype)));
      let index: Expr = u32(0);
      let stride: Expr = u32(1);
      for (let k = o.type.shape.length - 1; k >= 0; k--) {
        const ix = e.indices[k];
        if (ix !== undefined) index = add(index, mul(cast('u32', tr(ix)), stride));
        stride = mul(stride, dimExpr(o.type.shape[k] ?? { terms: [] }));
      }
      return cast(computeType(e.dtype), load(slot, index, storageType(o.type.dtype)));
    }
    case 'apply': {
      if (e.op === 'score' && e.args.length === 0) {
        if (scoreVar === undefined) throw new Error('internal: score() outside the score lambda');
        return scoreVar;
      }
      const op = e.op;
      if (!Object.prototype.hasOwnProperty.call(scalarLowering, op)) throw new Error(`internal: fused_attention lambda applies non-elementwise op '${op}'`);
      const result = computeType(e.dtype);
      if (isLazyWhere(e)) {
        // RoPE's rotate-half `where(d < half, -x[d + half], x[d - half])` in a qload: only the
        // chosen branch reads (the other index is out of range), as in lower-fused.ts.
        const [c0, a1, a2] = e.args;
        if (c0 === undefined || a1 === undefined || a2 === undefined) throw new Error('internal: where needs 3 arguments');
        const cond = tr(c0);
        const name = c.kb.fresh('w');
        out.push({ kind: 'var', name, type: result, init: lit(result, 0) });
        const branch = (x: ScalarExpr): Stmt[] => {
          const stmts: Stmt[] = [];
          stmts.push({ kind: 'assign', name, value: cast(result, lambdaExpr(c, g, n, stmts, x, idx, scoreVar)) });
          return stmts;
        };
        out.push({ kind: 'if', cond, then: branch(a1), else: branch(a2) });
        return v(name, result);
      }
      let args = e.args.map(tr);
      // Weak typing: arithmetic on an index and a float value happens in the float type.
      if (['add', 'sub', 'mul', 'div', 'max', 'min', 'pow', 'mod'].includes(op)) args = args.map((a) => cast(result, a));
      if (['lt', 'le', 'gt', 'ge', 'eq', 'ne'].includes(op)) {
        const [a0, a1] = args;
        if (a0 !== undefined && a1 !== undefined && exprType(a0) !== exprType(a1)) args = [cast('f32', a0), cast('f32', a1)];
      }
      if (op === 'where') {
        const [c0, a1, a2] = args;
        if (c0 !== undefined && a1 !== undefined && a2 !== undefined) args = [c0, cast(result, a1), cast(result, a2)];
      }
      const lower = scalarLowering[op as keyof typeof scalarLowering];
      return c.kb.let(out, 'lam', lower(args, { result, attrs: {} }));
    }
  }
}

export function readBytesOf(g: Graph, n: Node, e: ScalarExpr | undefined): number {
  if (e === undefined) return 0;
  switch (e.kind) {
    case 'read': {
      const id = n.operands[e.operand];
      const o = id === undefined ? undefined : g.nodes[id];
      return (o === undefined ? 0 : storageBytes(o.type.dtype)) + e.indices.reduce((s, x) => s + readBytesOf(g, n, x), 0);
    }
    case 'apply': {
      // A lazy where (lambdaExpr) reads one branch: count the dearer one.
      const [c, a, b] = e.args;
      if (isLazyWhere(e) && c !== undefined) return readBytesOf(g, n, c) + Math.max(readBytesOf(g, n, a), readBytesOf(g, n, b));
      return e.args.reduce((s, x) => s + readBytesOf(g, n, x), 0);
    }
    default:
      return 0;
  }
}
