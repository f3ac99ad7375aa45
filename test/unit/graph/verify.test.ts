// verifyGraph: one test per class of broken invariant. Bad graphs are made by editing copies
// of a valid parsed graph (the parser itself rejects most of these).
import { describe, expect, it } from 'vitest';
import { DiagnosticSink } from '../../../src/diag/diagnostic.js';
import type { Graph, Node } from '../../../src/graph/ir.js';
import { parseGraph } from '../../../src/graph/parse.js';
import { verifyGraph } from '../../../src/graph/verify.js';
import { dim } from './build-helpers.js';

const base = `graph m(B, T) {
  %0 = input {name="x"} : f32[B,T,8]  loc(m.tfx:1:1)
  %1 = weight {name="w"} : f32[8,4]  loc(m.tfx:2:1)
  %2 = matmul %0, %1 : f32[B,T,4]  loc(m.tfx:3:5)
  %3 = exp %2 : f32[B,T,4]  loc(m.tfx:4:5)
  %4 = grid %1 {body=(i, j) => gt(read(0, i, j), 0.0), shape=dims[8,4]} : bool[8,4]  loc(m.tfx:5:5)
  output "y" = %3  loc(m.tfx:6:1)
  output "mask" = %4  loc(m.tfx:7:1)
}`;

function valid(): Graph {
  const sink = new DiagnosticSink();
  const g = parseGraph(base, 'm.ir', sink);
  if (g === undefined) throw new Error(sink.items.map((d) => d.message).join('\n'));
  return g;
}

/** A copy of the base graph with node `i` replaced by `edit(node)`. */
function withNode(i: number, edit: (n: Node) => Node): Graph {
  const g = valid();
  return { ...g, nodes: g.nodes.map((n, k) => (k === i ? edit(n) : n)) };
}

describe('verifyGraph', () => {
  it('accepts a valid graph', () => {
    expect(verifyGraph(valid())).toEqual([]);
  });
  it('catches an id that is not the position', () => {
    expect(verifyGraph(withNode(3, (n) => ({ ...n, id: 7 })))).toContain('%3 (exp): id is 7 but the node is at position 3');
  });
  it('catches an operand defined after its use (dominance)', () => {
    expect(verifyGraph(withNode(2, (n) => ({ ...n, operands: [0, 3] })))).toContain('%2 (matmul): operand 1 is %3, which is not defined before this node');
  });
  it('catches a self-use and a missing node', () => {
    expect(verifyGraph(withNode(3, (n) => ({ ...n, operands: [3] })))).toContain('%3 (exp): operand 0 is %3, which is not defined before this node');
    expect(verifyGraph(withNode(3, (n) => ({ ...n, operands: [-1] })))).toContain('%3 (exp): operand 0 is %-1, which is not defined before this node');
  });
  it('catches an op missing from the catalog', () => {
    expect(verifyGraph(withNode(3, (n) => ({ ...n, op: 'expp' })))).toContain("%3 (expp): op 'expp' is not in the catalog");
  });
  it('catches the wrong number of operands', () => {
    expect(verifyGraph(withNode(3, (n) => ({ ...n, operands: [2, 2] })))).toContain("%3 (exp): has 2 operands, but 'exp' takes 1");
  });
  it('catches missing, mistyped and undeclared attributes', () => {
    expect(verifyGraph(withNode(0, (n) => ({ ...n, attrs: {} })))).toContain("%0 (input): lacks attribute 'name' (str)");
    expect(verifyGraph(withNode(0, (n) => ({ ...n, attrs: { name: { kind: 'int', value: 1 } } })))).toContain(
      "%0 (input): attribute 'name' is int, but 'input' declares str",
    );
    expect(verifyGraph(withNode(3, (n) => ({ ...n, attrs: { axis: { kind: 'int', value: 1 } } })))).toContain(
      "%3 (exp): has attribute 'axis', which 'exp' does not declare",
    );
  });
  it('catches a type that differs from what infer gives (shape and dtype)', () => {
    expect(verifyGraph(withNode(3, (n) => ({ ...n, type: { dtype: 'f32', shape: [dim('B'), dim('T'), dim('5')] } })))).toContain(
      "%3 (exp): type is f32[B,T,5], but 'exp' infers f32[B,T,4]",
    );
    expect(verifyGraph(withNode(3, (n) => ({ ...n, type: { ...n.type, dtype: 'f16' } })))).toContain("%3 (exp): type is f16[B,T,4], but 'exp' infers f32[B,T,4]");
  });
  it('catches operand types the op rejects', () => {
    const g = withNode(1, (n) => ({ ...n, type: { dtype: 'f32', shape: [dim('9'), dim('4')] } }));
    const problems = verifyGraph(g);
    expect(problems.some((p) => p.startsWith('%2 (matmul): operand types (f32[B,T,8], f32[9,4]) are invalid:'))).toBe(true);
  });
  it('catches a missing or empty location', () => {
    expect(verifyGraph(withNode(3, (n) => ({ ...n, loc: { file: '<unknown>', line: 0, col: 0, endLine: 0, endCol: 0 } })))).toContain(
      '%3 (exp): has no valid source location',
    );
    const g = valid();
    const noLoc = { ...g, nodes: g.nodes.map((n, k) => (k === 3 ? ({ ...n, loc: undefined } as unknown as Node) : n)) };
    expect(verifyGraph(noLoc)).toContain('%3 (exp): has no valid source location');
  });
  it('catches outputs that refer to no node, and repeated output names', () => {
    const g = valid();
    expect(verifyGraph({ ...g, outputs: [...g.outputs, { name: 'z', value: 99, loc: g.outputs[0]?.loc ?? g.nodes[0]!.loc }] })).toContain(
      'output "z": refers to %99, which does not exist',
    );
    expect(verifyGraph({ ...g, outputs: [...g.outputs, { ...g.outputs[0]!, value: 2 }] })).toContain('output "y": name is used twice');
  });
  it('catches repeated input and weight names', () => {
    const g = valid();
    const dup: Node = { ...g.nodes[1]!, id: 5 };
    expect(verifyGraph({ ...g, nodes: [...g.nodes, dup] })).toContain('%5 (weight): weight name "w" is already used by %1');
  });
  it('catches a dim that is not a graph dim', () => {
    expect(verifyGraph(withNode(0, (n) => ({ ...n, type: { dtype: 'f32', shape: [dim('B'), dim('S'), dim('8')] } })))).toContain(
      "%0 (input): type f32[B,S,8] uses 'S', which is not a graph dim",
    );
  });
  it('catches a lambda that reads with the wrong dtype or an unknown parameter', () => {
    const problems = verifyGraph(
      withNode(4, (n) => ({
        ...n,
        attrs: {
          ...n.attrs,
          body: { kind: 'lambda', params: ['i', 'i'], body: { kind: 'read', operand: 0, dtype: 'f16', indices: [{ kind: 'index', axis: 2 }] } },
        },
      })),
    );
    expect(problems).toEqual(
      expect.arrayContaining([
        "%4 (grid): attribute 'body': parameter 'i' is listed twice",
        "%4 (grid): attribute 'body': read of operand 0 has dtype f16, but the operand is f32[8,4]",
        "%4 (grid): attribute 'body': read of operand 0 uses 1 indices for f32[8,4]",
        "%4 (grid): attribute 'body': index 2 is out of range for 2 parameters",
      ]),
    );
  });
});
