// eliminate-common-subexpressions: merges nodes with the same op, operands, attributes and type
// into the first of them (uses of the later ones move to it). Inputs and weights are never
// merged: two declarations are two tensors of the interface even when they look alike.
//
//   before                                    after
//   %0 = input {name="x"} : f32[T]            %0 = input {name="x"} : f32[T]
//   %1 = exp %0 : f32[T]                      %1 = exp %0 : f32[T]
//   %2 = exp %0 : f32[T]                      %2 = add %1, %1 : f32[T]
//   %3 = add %1, %2 : f32[T]                  output "y" = %2
//   output "y" = %3
//
// One forward walk suffices: operands are renamed before a node's key is taken, so chains of
// duplicates collapse together. The key is the node's printed text (attrs sorted, floats exact).
// Needs: nothing. Keeps: the first node's loc.
import type { Node } from '../graph/ir.js';
import { printAttrs } from '../graph/print.js';
import { GraphBuilder, isInterfaceNode } from '../graph/rewrite.js';
import { printType } from '../graph/types.js';
import { countRuleHits, type GraphPass } from './pass.js';

function keyOf(n: Node, operands: readonly number[]): string {
  return `${n.op} ${operands.join(',')} ${printAttrs(n.attrs)} ${printType(n.type)}`;
}

export const eliminateCommonSubexpressions: GraphPass = {
  name: 'eliminate-common-subexpressions',
  summary: 'merge nodes with identical op, operands and attributes (never inputs or weights)',
  run: (g, ctx) => {
    const b = new GraphBuilder();
    const map: number[] = [];
    const seen = new Map<string, number>();
    let merged = 0;
    for (const n of g.nodes) {
      const operands = n.operands.map((o) => map[o] ?? o);
      if (!isInterfaceNode(n)) {
        const key = keyOf(n, operands);
        const prev = seen.get(key);
        if (prev !== undefined) {
          map[n.id] = prev;
          merged++;
          continue;
        }
        const id = b.copy(n, operands);
        map[n.id] = id;
        seen.set(key, id);
      } else {
        map[n.id] = b.copy(n, operands);
      }
    }
    if (merged === 0) return g;
    countRuleHits(ctx, 'eliminate-common-subexpressions/merge', merged);
    return b.finish(g, g.outputs.map((o) => ({ ...o, value: map[o.value] ?? o.value })));
  },
};
