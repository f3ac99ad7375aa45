// Syntax diagnostics of parseTfx: one test per code with its exact location, recovery (several
// errors per run, partial trees), nesting limits, and "never throws" on arbitrary input.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseTfx, maxNesting } from '../../../grammar/parse.js';
import { DiagnosticSink } from '../../../src/diag/diagnostic.js';

function parse(text: string) {
  const sink = new DiagnosticSink();
  const module = parseTfx(text, 't.tfx', sink);
  return { module, diags: sink.items.map((d) => `${d.code} ${d.loc.line}:${d.loc.col} ${d.message}`) };
}

describe('syntax diagnostics', () => {
  it('TFC001: an unexpected character, at its column', () => {
    expect(parse('model m {\n  x = a $ b\n}').diags).toEqual(["TFC001 2:9 unexpected character '$'"]);
  });

  it('TFC002: an unterminated string, from its opening quote', () => {
    const { diags } = parse('weight w: f32[4] = "wte.weight\nmodel m { }');
    expect(diags[0]).toBe('TFC002 1:20 unterminated string: a string must end with \'"\' on the same line');
  });

  it('TFC003: a wrong token, naming what was expected in plain words', () => {
    expect(parse('dims B, 3').diags).toEqual(["TFC003 1:9 expected a name but found '3'"]);
    expect(parse('model m {\n  x = a + * b\n}').diags).toEqual(["TFC003 2:11 expected an expression but found '*'"]);
  });

  it('TFC003: comparisons do not chain', () => {
    expect(parse('model m {\n  x = a < b < c\n}').diags).toEqual([
      "TFC003 2:13 comparisons do not chain: found '<' after a comparison; combine them with && or use parentheses",
    ]);
  });

  it('TFC003: the right side of |> must be a call', () => {
    expect(parse('model m {\n  y = x |> 3\n}').diags).toEqual(["TFC003 2:12 expected a name but found '3'"]);
  });

  it('TFC004: malformed numbers', () => {
    expect(parse('config {\n  a = 1e\n  b = 1.2.3\n  c = 3d\n}').diags).toEqual([
      "TFC004 2:7 malformed number '1e'",
      "TFC004 3:7 malformed number '1.2.3'",
      "TFC004 4:7 malformed number '3d'",
    ]);
  });

  it('TFC005: the input ends early, shown just after the last token', () => {
    expect(parse('model m {\n  x = f(a,').diags).toEqual(["TFC005 2:11 the input ended early: expected an expression"]);
  });

  it('TFC005: a missing closing bracket, shown where it belongs; the statement is dropped', () => {
    const { module, diags } = parse('model m {\n  x = (a + 1\n  y = x\n}');
    expect(diags).toEqual(["TFC005 2:13 missing ')' before 'y'"]);
    expect(module.items[0]?.kind === 'model' && module.items[0].body.length).toBe(1);
  });

  it('TFC006: nesting deeper than the limit is refused without a stack overflow', () => {
    const deep = `model m {\n  x = ${'('.repeat(5000)}1${')'.repeat(5000)}\n}`;
    const { diags } = parse(deep);
    expect(diags).toHaveLength(1);
    expect(diags[0]).toMatch(/^TFC006 2:/);
    expect(parse(`model m { x = ${'-'.repeat(100000)}1 }`).diags[0]).toMatch(/^TFC006 1:/);
  });

  it('TFC006: an operator chain or index run too long for the tree walkers downstream', () => {
    const sum = Array.from({ length: 1002 }, () => 'a').join(' + ');
    expect(parse(`model m {\n  x = ${sum}\n}`).diags).toEqual([`TFC006 2:${7 + 1000 * 4 + 2} expression too long: more than 1000 operators in one expression`]);
    expect(parse(`model m { x = a${'[0]'.repeat(1001)} }`).diags).toEqual([`TFC006 1:${16 + 1000 * 3} expression too long: more than 1000 index suffixes in a row`]);
    expect(parse(`model m { x = ${Array.from({ length: 1000 }, () => 'a').join(' * ')} }`).diags).toEqual([]);
  });

  it('TFC006: nesting the bracket count cannot see (grid bodies) still ends in a diagnostic', () => {
    const { diags } = parse(`model m { x = ${'grid[T](i) => '.repeat(5000)}i }`);
    expect(diags).toEqual(['TFC006 1:1 source nested too deeply to parse']);
    expect(parse('model m { x = 1 }').diags).toEqual([]); // and the parser is usable afterwards
  });

  it('parses nesting right up to the limit', () => {
    const depth = maxNesting - 2; // the model's braces count too
    const { diags, module } = parse(`model m { x = ${'('.repeat(depth)}1${')'.repeat(depth)} }`);
    expect(diags).toEqual([]);
    expect(module.items).toHaveLength(1);
  });

  it('TFC007: invalid escapes and stray braces in strings', () => {
    expect(parse('weight w: f32 = "a\\qb"').diags).toEqual(["TFC007 1:19 invalid escape '\\q' in a string"]);
    expect(parse('weight w: f32 = "h.{l.w"').diags).toEqual(['TFC007 1:17 a brace in a string must be a placeholder like {l}']);
  });
});

describe('error recovery', () => {
  it('reports three separate syntax errors in one file and keeps the good parts', () => {
    const src = [
      'config {',
      '  d = 64',
      '  heads = * 4', // 1: no operand
      '}',
      'dims B T', // 2: missing comma -> 'T' cannot start an item
      'fn f(x: f32[B, d]) -> f32[B, d] {',
      '  y = x + 1',
      '  z = f(y,, 2)', // 3: an empty argument
      '  return z',
      '}',
      'model m {',
      '  out = f(x)',
      '}',
    ].join('\n');
    const { module, diags } = parse(src);
    expect(diags.map((d) => d.split(' ').slice(0, 2).join(' '))).toEqual(['TFC003 3:11', 'TFC003 5:8', 'TFC003 8:11']);
    expect(module.items.map((i) => i.kind)).toEqual(['config', 'dims', 'fn', 'model']);
    const fn = module.items[2];
    expect(fn?.kind === 'fn' && fn.body.map((s) => s.kind)).toEqual(['assign', 'return']);
  });

  it('does not turn the rest of a broken line into statements', () => {
    const { module, diags } = parse('model m {\n  a = f(x y) + 1\n  b = 2\n}');
    expect(diags).toHaveLength(1);
    expect(module.items[0]?.kind === 'model' && module.items[0].body.map((s) => (s.kind === 'assign' ? s.targets[0]?.name.name : ''))).toEqual(['a', 'b']);
  });

  it('never throws, whatever the input', () => {
    const alphabet = [...'abfxyzlT019 .,;:=+-*/%@<>!&|()[]{}"\\#\n\t$e'];
    const words = ['config', 'dims', 'weight', 'input', 'output', 'fn', 'model', 'for', 'in', 'return', 'index', 'grid', 'f32', '..', '->', '=>', '|>', '1e-5'];
    const piece = fc.oneof(fc.constantFrom(...alphabet), fc.constantFrom(...words));
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 120 }), (pieces) => {
        const sink = new DiagnosticSink();
        const m = parseTfx(pieces.join(' '), 'fuzz.tfx', sink);
        expect(Array.isArray(m.items)).toBe(true);
      }),
      { numRuns: 400, seed: 1 },
    );
  });

  it('parses a long flat program in linear-ish time (no backtracking)', () => {
    const stmts = Array.from({ length: 20000 }, (_, i) => `  x${i} = a + b * c |> f(d, axis=-1)`);
    const { diags, module } = parse(`model m {\n${stmts.join('\n')}\n}`);
    expect(diags).toEqual([]);
    expect(module.items[0]?.kind === 'model' && module.items[0].body.length).toBe(20000);
  });
});
