// The graph plumbing every pass uses (src/graph/rewrite.ts): def-use facts and the rebuild with
// replacements, on small IR graphs printed back as IR text.
import { describe, expect, it } from 'vitest';
import { DefUse, rebuildGraph } from '../../../src/graph/rewrite.js';
import { printGraph } from '../../../src/graph/print.js';
import { graphOf } from '../kernel/helpers.js';

const g = graphOf(`graph m(T) {
  %0 = input {name="x"} : f32[T,4]
  %1 = input {name="unused"} : f32[4]
  %2 = mul %0, %0 : f32[T,4]
  %3 = exp %2 : f32[T,4]
  %4 = add %3, %0 : f32[T,4]
  %5 = neg %0 : f32[T,4]
  output "y" = %4
  output "z" = %3
}`);

const text = (x: typeof g): string => printGraph(x, { locs: false });

describe('DefUse', () => {
  const du = new DefUse(g);
  it('lists every use with its operand position, in node order', () => {
    expect(du.uses(0).map((u) => `%${u.user.id}.${u.operand}`)).toEqual(['%2.0', '%2.1', '%4.1', '%5.0']);
    expect(du.users(0).map((n) => n.id)).toEqual([2, 2, 4, 5]);
    expect(du.distinctUsers(0).map((n) => n.id)).toEqual([2, 4, 5]);
    expect(du.uses(1)).toEqual([]);
    expect(du.uses(4)).toEqual([]); // an output has no operand uses
  });
  it('knows the outputs and refuses an unknown node', () => {
    expect([0, 1, 2, 3, 4, 5].filter((id) => du.isOutput(id))).toEqual([3, 4]);
    expect(() => du.node(9)).toThrow(/no node %9/);
  });
});

describe('rebuildGraph', () => {
  it('copies, replaces and drops nodes, remaps outputs, and removes what died (inputs stay)', () => {
    // exp(x * x) becomes one node: the mul is dropped (folded into its user), %3 replaced.
    const out = rebuildGraph(g, (n, r) => {
      if (n.id === 2) return undefined;
      if (n.id === 3) return r.b.add({ op: 'exp', operands: [r.mapped(0)], attrs: {}, type: n.type, loc: n.loc });
      return r.copy(n);
    });
    expect(text(out)).toBe(`graph m(T) {
  %0 = input {name="x"} : f32[T,4]
  %1 = input {name="unused"} : f32[4]
  %2 = exp %0 : f32[T,4]
  %3 = add %2, %0 : f32[T,4]
  output "y" = %3
  output "z" = %2
}
`);
  });
  it('refuses a use of a dropped node', () => {
    expect(() => rebuildGraph(g, (n, r) => (n.id === 3 ? undefined : r.copy(n)))).toThrow(/%3 used before definition or was fused away/);
  });
});
