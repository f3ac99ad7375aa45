// parseGraph: the IR text reads back exactly (round trip), and malformed text gives TFC310
// diagnostics at the right line:col, several per run.
import { describe, expect, it } from 'vitest';
import { DiagnosticSink } from '../../../src/diag/diagnostic.js';
import { parseGraph } from '../../../src/graph/parse.js';
import { printGraph } from '../../../src/graph/print.js';
import { A, HandGraph, S, ty } from './build-helpers.js';

function parse(text: string) {
  const sink = new DiagnosticSink();
  const g = parseGraph(text, 't.ir', sink);
  return { g, diags: sink.items.map((d) => `${d.loc.line}:${d.loc.col} ${d.code} ${d.message}`) };
}

function roundTrip(text: string): string {
  const { g, diags } = parse(text);
  expect(diags).toEqual([]);
  if (g === undefined) throw new Error('no graph');
  return printGraph(g);
}

describe('parseGraph round trip', () => {
  it('reads what printGraph writes, locs and from() included', () => {
    const text = [
      'graph m(T) {',
      '  %0 = input {name="x"} : f32[T]  loc(a.tfx:1:1 to :9)',
      '  %1 = exp %0 : f32[T]  loc(a.tfx:2:3 to 4:1) from(a.tfx:2:3, "b c.tfx":7:1 to :4)',
      '  output "y" = %1  loc(a.tfx:5:1)',
      '}',
      '',
    ].join('\n');
    expect(roundTrip(text)).toBe(text);
    const { g } = parse(text);
    expect(g?.nodes[1]?.from).toEqual([
      { file: 'a.tfx', line: 2, col: 3, endLine: 2, endCol: 3 },
      { file: 'b c.tfx', line: 7, col: 1, endLine: 7, endCol: 4 },
    ]);
  });

  it('renumbers free-form value names and accepts comments and blank lines', () => {
    const text = `// a hand-written test input
graph m(B) {
  %x = input {name="x"} : f32[B]   // the input
  %tmp = neg %x : f32[B]

  output "y" = %tmp
}`;
    expect(roundTrip(text)).toBe(
      'graph m(B) {\n  %0 = input {name="x"} : f32[B]  loc(t.ir:3:3 to :32)\n  %1 = neg %0 : f32[B]  loc(t.ir:4:3 to :24)\n  output "y" = %1  loc(t.ir:6:3 to :19)\n}\n',
    );
  });

  it('without locs, places each node at its IR text line', () => {
    const { g } = parse('graph m() {\n  %0 = const {value=1.0} : f32[]\n  output "y" = %0\n}\n');
    expect(g?.nodes[0]?.loc).toEqual({ file: 't.ir', line: 2, col: 3, endLine: 2, endCol: 32 });
  });

  it('round-trips lambda dtypes that differ from the defaults', () => {
    // read:f16 (operand is f32) and cast:f16 must keep their dtypes; consts of every kind too.
    const h = new HandGraph('g', ['T']);
    const w = h.add('weight', [], { name: A.str('w') }, ty('f32', 'T'));
    const body = S.ap(
      'where',
      'f16',
      S.c(1, 'bool'),
      S.ap('cast', 'f16', S.ap('add', 'i32', S.c(3, 'i32'), S.idx(0))),
      S.ap('add', 'f16', S.read(0, 'f16', S.idx(0)), S.c(0.5, 'f16')),
    );
    h.add('grid', [w], { shape: A.dims('T'), body: A.lambda(['i'], body) }, ty('f16', 'T'));
    h.add('grid', [], { shape: A.dims('T'), body: A.lambda(['i'], S.ap('max', 'f32', S.c(-Infinity, 'f32'), S.c(2, 'f32'))) }, ty('f32', 'T'));
    h.add('grid', [], { shape: A.dims('T'), body: A.lambda(['i'], S.ap('eq', 'bool', S.c(0, 'bool'), S.c(2, 'bool'))) }, ty('bool', 'T'));
    h.add('grid', [], { shape: A.dims('T'), body: A.lambda(['dim'], S.ap('add', 'i32', S.idx(0), S.dim('T-1'))) }, ty('i32', 'T'));
    h.out('y', 1);
    const g = h.graph();
    const text = printGraph(g);
    expect(text).toContain('body=(i) => where(true, cast:f16(add(3, i)), add(read:f16(0, i), f16(0.5)))');
    expect(text).toContain('body=(i) => max(-inf, 2.0)');
    expect(text).toContain('body=(i) => eq(false, bool(2.0))');
    expect(text).toContain('body=(dim) => add(dim, dim(T-1))');
    const { g: back, diags } = parse(text);
    expect(diags).toEqual([]);
    expect(back).toEqual(g);
  });

  it('reads every attribute kind', () => {
    const text = `graph m(T) {
  %0 = input {name="x\\u0041\\n"} : f32[T,4]
  %1 = permute %0 {perm=[1,0]} : f32[4,T]
  %2 = reshape %1 {shape=dims[2,2*T]} : f32[2,2*T]
  %3 = slice %2 {axis=1, end=dim(2*T-1), start=dim(1)} : f32[2,2*T-2]
  %4 = sum %3 {axes=[], keepdims=true} : f32[2,2*T-2]
  %5 = cast %4 {to=bf16} : bf16[2,2*T-2]
  %6 = const {value=-1e-7} : f32[]
  output "y" = %5
}`;
    const { g, diags } = parse(text);
    expect(diags).toEqual([]);
    expect(g?.nodes[0]?.attrs['name']).toEqual({ kind: 'str', value: 'xA\n' });
    expect(g?.nodes[1]?.attrs['perm']).toEqual({ kind: 'ints', value: [1, 0] });
    expect(g?.nodes[4]?.attrs).toEqual({ axes: { kind: 'ints', value: [] }, keepdims: { kind: 'bool', value: true } });
    expect(g?.nodes[5]?.attrs['to']).toEqual({ kind: 'dtype', value: 'bf16' });
    expect(g?.nodes[6]?.attrs['value']).toEqual({ kind: 'float', value: -1e-7 });
    expect(Object.isFrozen(g?.nodes[0])).toBe(true);
  });
});

describe('parseGraph errors (TFC310 with line:col)', () => {
  const cases: readonly [string, string, string][] = [
    ['unknown op with a suggestion', 'graph m() {\n  %0 = constt {value=1.0} : f32[]\n}', "2:8 TFC310 unknown op 'constt' (did you mean 'const'?)"],
    ['use before definition', 'graph m(T) {\n  %0 = neg %1 : f32[T]\n}', '2:12 TFC310 use of undefined value %1'],
    ['value defined twice', 'graph m() {\n  %0 = const {value=1.0} : f32[]\n  %0 = const {value=2.0} : f32[]\n}', '3:3 TFC310 value %0 is defined twice'],
    ['attribute of the wrong kind', 'graph m() {\n  %0 = const {value=1} : f32[]\n}', "2:15 TFC310 attribute 'value' of 'const' must be a float (e.g. 1.0, -inf), found an int"],
    ['unknown attribute', 'graph m(T) {\n  %0 = input {name="x", nme="y"} : f32[T]\n}', "2:25 TFC310 op 'input' has no attribute 'nme' (did you mean 'name'?)"],
    ['missing attribute', 'graph m(T) {\n  %0 = input : f32[T]\n}', "2:8 TFC310 op 'input' needs attribute 'name' (a string)"],
    ['unknown dtype', 'graph m(T) {\n  %0 = input {name="x"} : f33[T]\n}', "2:27 TFC310 unknown dtype 'f33' (expected one of f32, f16, bf16, i32, i8, bool)"],
    ['missing type', 'graph m(T) {\n  %0 = input {name="x"}\n}', "3:1 TFC310 expected ':' before the result type, found '}'"],
    ['trailing junk', 'graph m(T) {\n  %0 = input {name="x"} : f32[T] junk\n}', "2:34 TFC310 unexpected 'junk' at the end of the statement"],
    ['unclosed graph', 'graph m(T) {\n  %0 = input {name="x"} : f32[T]\n', '3:1 TFC310 expected \'}\' to close the graph, found the end of the text'],
    ['bad loc', 'graph m(T) {\n  %0 = input {name="x"} : f32[T]  loc(oops)\n}', "2:39 TFC310 expected a location 'file:line:col', found 'oops'"],
    ['unknown lambda name', 'graph m(T) {\n  %0 = grid {body=(q) => le(q, k), shape=dims[T]} : bool[T]\n}', "2:32 TFC310 unknown name 'k' in the lambda body (parameters: q)"],
    ['duplicate output', 'graph m() {\n  %0 = const {value=1.0} : f32[]\n  output "y" = %0\n  output "y" = %0\n}', '4:10 TFC310 output "y" is given twice'],
    ['not a graph', 'grap m() {}', "1:1 TFC310 expected 'graph', found 'grap'"],
  ];
  for (const [what, text, want] of cases) {
    it(`reports ${what}`, () => {
      const { g, diags } = parse(text);
      expect(g).toBeUndefined();
      expect(diags[0]).toBe(want);
    });
  }

  it('reports several errors in one run, one per bad line', () => {
    const { diags } = parse('graph m(T) {\n  %0 = nope : f32[T]\n  %1 = input {name="x"} : f32[T]\n  %2 = neg %9 : f32[T]\n  %3 = neg %1 : q\n}');
    expect(diags.map((d) => d.split(' TFC310')[0])).toEqual(['2:8', '4:12', '5:17']);
  });
});
