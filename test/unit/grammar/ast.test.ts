// What parseTfx builds beyond the goldens: full spans on every node, and printAst without locations.
import { describe, expect, it } from 'vitest';
import { parseTfx } from '../../../grammar/parse.js';
import { printAst } from '../../../grammar/print-ast.js';
import { astEqual, stripLocs } from '../../../grammar/ast-equal.js';
import { DiagnosticSink } from '../../../src/diag/diagnostic.js';

function parse(text: string) {
  const sink = new DiagnosticSink();
  const m = parseTfx(text, 's.tfx', sink);
  expect(sink.items).toEqual([]);
  return m;
}

describe('AST locations', () => {
  it('spans a binary node from its left start to its right end (1-based, inclusive end)', () => {
    const m = parse('model m {\n  y = (a + b) * f(c,\n    d)\n}');
    const model = m.items[0];
    if (model?.kind !== 'model') throw new Error('expected a model');
    const stmt = model.body[0];
    if (stmt?.kind !== 'assign') throw new Error('expected an assignment');
    expect(stmt.loc).toEqual({ file: 's.tfx', line: 2, col: 3, endLine: 3, endCol: 6 });
    const v = stmt.value;
    expect(v.kind).toBe('binary');
    // `(a + b)` keeps the inner span (parentheses only group), so the product starts at `a`.
    expect(v.loc).toEqual({ file: 's.tfx', line: 2, col: 8, endLine: 3, endCol: 6 });
    if (v.kind !== 'binary') return;
    expect(v.right.loc).toEqual({ file: 's.tfx', line: 2, col: 17, endLine: 3, endCol: 6 });
    expect(model.loc).toEqual({ file: 's.tfx', line: 1, col: 1, endLine: 4, endCol: 1 });
  });

  it('spans declarations, family ranges and keys', () => {
    const m = parse('weight w[l in 0..n]: f32[d] = "h.{l}.w"');
    const w = m.items[0];
    if (w?.kind !== 'weight') throw new Error('expected a weight');
    expect(w.loc).toEqual({ file: 's.tfx', line: 1, col: 1, endLine: 1, endCol: 39 });
    expect(w.family?.loc).toEqual({ file: 's.tfx', line: 1, col: 9, endLine: 1, endCol: 19 });
    expect(w.key).toEqual({ value: 'h.{l}.w', loc: { file: 's.tfx', line: 1, col: 31, endLine: 1, endCol: 39 } });
  });
});

describe('printAst', () => {
  it('omits locations when asked and is deterministic', () => {
    const m = parse('model m { y = -x[0] |> f(axis=1) }');
    const text = printAst(m, { locs: false });
    expect(text).not.toContain('@');
    expect(text).toBe(printAst(parse('model m { y = -x[0] |> f(axis=1) }'), { locs: false }));
    expect(text).toContain('into: Call f');
  });
});

describe('astEqual', () => {
  it('ignores locations and comments but not structure', () => {
    expect(astEqual(parse('model m { y = a + b }'), parse('# c\nmodel m {\n  y = a+b\n}'))).toBe(true);
    expect(astEqual(parse('model m { y = a + b }'), parse('model m { y = b + a }'))).toBe(false);
    expect(JSON.stringify(stripLocs(parse('dims B')))).toBe('{"file":"s.tfx","items":[{"kind":"dims","names":[{"name":"B"}]}]}');
  });
});
