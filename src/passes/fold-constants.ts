// fold-constants: evaluates elementwise ops whose operands are all scalar `const`s, and drops
// arithmetic identities (x*1, 1*x, x+0, 0+x, x-0, x/1) and `where` on a constant condition when
// the result type equals the kept operand's type (so a broadcast or a dtype change is never lost).
//
//   before                                    after
//   %0 = input {name="x"} : f32[T]            %0 = input {name="x"} : f32[T]
//   %1 = const {value=2.0} : f32[]            %1 = const {value=6.0} : f32[]
//   %2 = const {value=3.0} : f32[]            %2 = add %0, %1 : f32[T]
//   %3 = mul %1, %2 : f32[]                   output "y" = %2
//   %4 = add %0, %3 : f32[T]
//   %5 = const {value=1.0} : f32[]
//   %6 = mul %4, %5 : f32[T]
//   output "y" = %6
//
// Values are computed by the op's own float64 interpreter rule (the catalog), so folding agrees
// with `tfc run --target interp` bit for bit. x+0 -> x differs only for x = -0.0 (gives +0.0),
// which no consumer distinguishes. Needs: nothing. Keeps: types of every surviving value.
import type { Node } from '../graph/ir.js';
import { getOp } from '../ops/catalog.js';
import type { Tensor64 } from '../base/tensor.js';
import { typeEquals } from '../graph/types.js';
import type { GraphPass } from './pass.js';
import { type Rule, type RuleContext, applyRules, defineRule } from './rules.js';

/** The value of a scalar `const` node, or undefined for anything else. */
function constValue(ctx: RuleContext, id: number): number | undefined {
  const n = ctx.node(id);
  if (n.op !== 'const' || n.type.shape.length !== 0) return undefined;
  const v = n.attrs['value'];
  return v !== undefined && v.kind === 'float' ? v.value : undefined;
}

/** `op(x, c)` or (when commutative) `op(c, x)` with const c === k and the node typed like x. */
function identityOperand(node: Node, ctx: RuleContext, op: string, k: number, commutative: boolean): number | undefined {
  if (node.op !== op || node.operands.length !== 2) return undefined;
  const [a, b] = node.operands;
  if (a === undefined || b === undefined) return undefined;
  const keeps = (x: number): boolean => typeEquals(ctx.node(x).type, node.type);
  if (constValue(ctx, b) === k && keeps(a)) return a;
  if (commutative && constValue(ctx, a) === k && keeps(b)) return b;
  return undefined;
}

function identityRule(name: string, op: string, k: number, commutative: boolean): Rule {
  return defineRule({
    name,
    match: (node, ctx) => identityOperand(node, ctx, op, k, commutative),
    rewrite: (_node, x) => x,
  });
}

export const foldConstantsRules: readonly Rule[] = [
  // op(const a, const b, ...) -> const op(a, b, ...)   (elementwise, scalar result)
  defineRule({
    name: 'fold-scalar-op',
    match: (node, ctx) => {
      const op = getOp(node.op);
      if (op === undefined || op.family !== 'elementwise' || node.type.shape.length !== 0 || node.operands.length === 0) return undefined;
      const values: Tensor64[] = [];
      for (const o of node.operands) {
        const v = constValue(ctx, o);
        if (v === undefined) return undefined;
        values.push({ dtype: ctx.node(o).type.dtype, shape: [], data: Float64Array.of(v) });
      }
      const r = op.interp(values, { node, dims: new Map(), shape: [] }).data[0];
      return r === undefined ? undefined : { value: r };
    },
    rewrite: (node, m, ctx) => ctx.emit({ op: 'const', operands: [], attrs: { value: { kind: 'float', value: m.value } }, type: node.type }),
  }),
  // where(const c, a, b) -> a (c true) or b, when the picked side already has the result's type:
  // a per-layer choice `where(l % 2 == 0, local, global)` (l a loop index) leaves each layer one
  // mask, so fuse-attention sees that layer's own predicate (and its block sparsity).
  defineRule({
    name: 'where-const-cond',
    match: (node, ctx) => {
      if (node.op !== 'where' || node.operands.length !== 3) return undefined;
      const [c, a, b] = node.operands;
      if (c === undefined || a === undefined || b === undefined) return undefined;
      const v = constValue(ctx, c);
      if (v === undefined) return undefined;
      const picked = v !== 0 ? a : b;
      return typeEquals(ctx.node(picked).type, node.type) ? picked : undefined;
    },
    rewrite: (_node, x) => x,
  }),
  identityRule('mul-by-one', 'mul', 1, true), // x * 1 -> x
  identityRule('add-zero', 'add', 0, true), // x + 0 -> x
  identityRule('sub-zero', 'sub', 0, false), // x - 0 -> x
  identityRule('div-by-one', 'div', 1, false), // x / 1 -> x
];

export const foldConstants: GraphPass = {
  name: 'fold-constants',
  summary: 'evaluate elementwise ops on scalar constants; drop x*1, x+0, x-0, x/1 and where(const, a, b)',
  run: (g, ctx) => applyRules(g, foldConstantsRules, ctx, { pass: 'fold-constants' }),
};
