// simplify-movement: composes chains of permutes and of reshapes, and removes the ones that do
// nothing, so later fusion sees one movement op (or none) between compute ops.
//
//   before                                              after
//   %0 = input {name="x"} : f32[B,T,4,16]               %0 = input {name="x"} : f32[B,T,4,16]
//   %1 = permute %0 {perm=[0,2,1,3]} : f32[B,4,T,16]    %1 = reshape %0 {shape=dims[B,T,64]} : f32[B,T,64]
//   %2 = permute %1 {perm=[0,2,1,3]} : f32[B,T,4,16]    output "y" = %1
//   %3 = reshape %2 {shape=dims[B,4*T,16]} : f32[B,4*T,16]
//   %4 = reshape %3 {shape=dims[B,T,64]} : f32[B,T,64]
//   output "y" = %4
//
// Rules: permute(permute(x, p), q) -> permute(x, [p[q[0]], p[q[1]], ...]) (result axis i is
// input axis perm[i]); permute(x, identity) -> x; reshape(reshape(x, s), t) -> reshape(x, t);
// reshape(x, shape of x) -> x. Needs: types inferred. Keeps: every surviving value's type.
import { intsAttr } from '../graph/ir.js';
import { shapeEquals } from '../graph/types.js';
import type { GraphPass } from './pass.js';
import { type Rule, applyRules, defineRule } from './rules.js';

const isIdentity = (perm: readonly number[]): boolean => perm.every((a, i) => a === i);

export const simplifyMovementRules: readonly Rule[] = [
  // permute(x, identity) -> x
  defineRule({
    name: 'identity-permute',
    match: (node) => (node.op === 'permute' && isIdentity(intsAttr(node, 'perm')) ? node.operands[0] : undefined),
    rewrite: (_node, x) => x,
  }),
  // permute(permute(x, p), q) -> permute(x, p∘q)
  defineRule({
    name: 'compose-permutes',
    match: (node, ctx) => {
      const inner = node.op === 'permute' && node.operands[0] !== undefined ? ctx.node(node.operands[0]) : undefined;
      if (inner === undefined || inner.op !== 'permute' || inner.operands[0] === undefined) return undefined;
      const p = intsAttr(inner, 'perm');
      const perm = intsAttr(node, 'perm').map((a) => p[a] ?? -1);
      return { x: inner.operands[0], perm, from: inner.loc };
    },
    rewrite: (node, m, ctx) =>
      isIdentity(m.perm)
        ? m.x
        : ctx.emit({ op: 'permute', operands: [m.x], attrs: { perm: { kind: 'ints', value: m.perm } }, type: node.type, from: [node.loc, m.from] }),
  }),
  // reshape(x, shape of x) -> x
  defineRule({
    name: 'identity-reshape',
    match: (node, ctx) => {
      const x = node.op === 'reshape' ? node.operands[0] : undefined;
      return x !== undefined && shapeEquals(ctx.node(x).type.shape, node.type.shape) ? x : undefined;
    },
    rewrite: (_node, x) => x,
  }),
  // reshape(reshape(x, s), t) -> reshape(x, t)
  defineRule({
    name: 'merge-reshapes',
    match: (node, ctx) => {
      const inner = node.op === 'reshape' && node.operands[0] !== undefined ? ctx.node(node.operands[0]) : undefined;
      if (inner === undefined || inner.op !== 'reshape' || inner.operands[0] === undefined) return undefined;
      return { x: inner.operands[0], from: inner.loc };
    },
    rewrite: (node, m, ctx) => ctx.emit({ op: 'reshape', operands: [m.x], attrs: node.attrs, type: node.type, from: [node.loc, m.from] }),
  }),
];

export const simplifyMovement: GraphPass = {
  name: 'simplify-movement',
  summary: 'compose permute and reshape chains; remove identity permutes and reshapes',
  run: (g, ctx) => applyRules(g, simplifyMovementRules, ctx, { pass: 'simplify-movement' }),
};
