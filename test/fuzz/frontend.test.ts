// Property tests of the front end (issue 9): random token streams, random text, mutated example
// programs, generated expressions, huge numbers and odd identifiers go through checkSource and,
// when they check, the webgpu pass pipeline (verifier on) and compilePlan. Nothing may throw,
// every diagnostic has a location, and pathological inputs finish (TFC006 or success).
// Seeds are fixed; to replay a failure, copy the `seed` and `path` fast-check prints into
// `fc.assert(..., { seed, path })` (see docs/testing.md, Robustness).
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { checkSource } from '../../src/check/check-source.js';
import { Tally, throughFrontEnd, fuzzFile, assertLocated } from './harness.js';
import { exampleFiles } from '../helpers/examples.js';

const tally = new Tally();
afterAll(() => {
  console.log(tally.report());
});

function run(property: string, text: string, overrides?: ReadonlyMap<string, number>): void {
  tally.add(property, throughFrontEnd(text, overrides === undefined ? {} : { overrides }));
}

/** Example sources with their sizes shrunk (so mutants that still check compile quickly). */
const small: Record<string, string> = { vocab: '64', ctx: '16', d: '16', heads: '2', kv_heads: '1', layers: '1', ffn: '24' };
const examples = exampleFiles.map((f) => ({
  file: f,
  text: readFileSync(f, 'utf8').replace(/^(\s*)(vocab|ctx|d|heads|kv_heads|layers|ffn)(\s*=\s*)\d+/gm, (_m, ws: string, k: string, eq: string) => `${ws}${k}${eq}${small[k] ?? '1'}`),
}));

// --- token vocabulary ------------------------------------------------------------------------
const keywords = ['config', 'dims', 'input', 'output', 'weight', 'fn', 'model', 'for', 'in', 'return', 'index', 'grid', 'inf', 'pi'];
const dtypes = ['f32', 'f16', 'bf16', 'i32', 'bool'];
const idents = ['x', 'y', 'B', 'T', 'd', 'l', 'tokens', 'logits', 'w', 'sum', 'softmax', 'arange', 'reshape', 'split', 'transpose', 'layernorm', 'where', 'max', 'cast', 'slice', 'concat', 'axis', 'f'];
const numbers = ['0', '1', '2', '64', '1e-5', '0.5', '.5', '1e400', '99999999999999999999', '1e-400', '4294967296', '2147483648', '1.', '00', '1e', '1e+'];
const strings = ['"w"', '"h.{l}.w"', '"{l}"', '"{"', '"\\n"', '"\\q"', '"', '""'];
const puncts = ['+', '-', '*', '/', '%', '@', '==', '!=', '<', '<=', '>', '>=', '&&', '||', '!', '|>', '=>', '->', '=', '..', ',', ':', ';', '(', ')', '[', ']', '{', '}', '#c', '$', '`', '\\'];
const vocabulary = [...keywords, ...dtypes, ...idents, ...numbers, ...strings, ...puncts];
const token = fc.constantFrom(...vocabulary);
const separator = fc.constantFrom(' ', ' ', '\n', '', '\t', '\r\n');

/** Splits source into tokens and separators (a rough lexer, good enough to mutate with). */
function roughTokens(text: string): string[] {
  return text.match(/\s+|#[^\n]*|[A-Za-z_][A-Za-z0-9_]*|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|"[^"\n]*"|\|>|\|\||&&|==|!=|<=|>=|=>|->|\.\.|[^]/g) ?? [];
}

type Mutation =
  | { kind: 'delete' | 'duplicate'; at: number }
  | { kind: 'swap'; at: number; with: number }
  | { kind: 'replace'; at: number; by: string }
  | { kind: 'char-delete' | 'char-duplicate' | 'char-swap'; at: number }
  | { kind: 'char-insert'; at: number; ch: string };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constantFrom('delete' as const, 'duplicate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('swap' as const), at: fc.nat(), with: fc.nat() }),
  fc.record({ kind: fc.constant('replace' as const), at: fc.nat(), by: token }),
  fc.record({ kind: fc.constantFrom('char-delete' as const, 'char-duplicate' as const, 'char-swap' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('char-insert' as const), at: fc.nat(), ch: fc.constantFrom('(', ')', '[', ']', '{', '}', ',', '"', '#', '\n', '-', '0', 'x', '\u00e9', '\u0000', '\u{1F600}') }),
);

function mutate(text: string, ms: readonly Mutation[]): string {
  let cur = text;
  for (const m of ms) {
    if (m.kind.startsWith('char-')) {
      if (cur.length === 0) continue;
      const i = m.at % cur.length;
      if (m.kind === 'char-delete') cur = cur.slice(0, i) + cur.slice(i + 1);
      else if (m.kind === 'char-duplicate') cur = cur.slice(0, i + 1) + cur.slice(i);
      else if (m.kind === 'char-swap') cur = cur.slice(0, i) + cur.slice(i + 1, i + 2) + cur.slice(i, i + 1) + cur.slice(i + 2);
      else if (m.kind === 'char-insert') cur = cur.slice(0, i) + m.ch + cur.slice(i);
      continue;
    }
    // Token mutations act on non-space tokens only, so most of them change the program.
    const toks = roughTokens(cur);
    const real = toks.flatMap((t, i) => (/^\s/.test(t) || t.startsWith('#') ? [] : [i]));
    if (real.length === 0) continue;
    const i = real[m.at % real.length] ?? 0;
    if (m.kind === 'delete') toks.splice(i, 1);
    else if (m.kind === 'duplicate') toks.splice(i, 0, toks[i] ?? '', ' ');
    else if (m.kind === 'replace') toks[i] = m.by;
    else if (m.kind === 'swap') {
      const j = real[m.with % real.length] ?? 0;
      const a = toks[i] ?? '';
      toks[i] = toks[j] ?? '';
      toks[j] = a;
    }
    cur = toks.join('');
  }
  return cur;
}

// --- generated expressions inside a model that otherwise checks --------------------------------
const unaryFns = ['exp', 'log', 'sqrt', 'tanh', 'relu', 'gelu', 'sigmoid', 'neg', 'abs', 'softmax', 'silu', 'erf'];
const exprArb: fc.Arbitrary<string> = fc.letrec<{ e: string }>((tie) => ({
  e: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constantFrom('x', 'x', 'y', '1.0', '2', '0', '-1e4', '1e4', 'inf', 'pi', '1e400', 'w', 'wrow', 'mask'),
    fc.tuple(tie('e'), fc.constantFrom('+', '-', '*', '/', '@', '%', '==', '<', '&&', '|>'), tie('e')).map(([a, op, b]) => (op === '|>' ? `${a} |> softmax()` : `(${a} ${op} ${b})`)),
    fc.tuple(fc.constantFrom(...unaryFns), tie('e')).map(([f, a]) => `${f}(${a})`),
    fc.tuple(fc.constantFrom('sum', 'max', 'mean'), tie('e'), fc.constantFrom('-1', '0', '1', '2', '[0, 1]', '3')).map(([f, a, ax]) => `${f}(${a}, axis=${ax}, keepdims=true)`),
    tie('e').map((a) => `transpose(${a})`),
    tie('e').map((a) => `reshape(${a}, [-1, d])`),
    tie('e').map((a) => `layernorm(${a}, g, b)`),
    fc.tuple(tie('e'), tie('e')).map(([a, b]) => `where(mask, ${a}, ${b})`),
    fc.tuple(tie('e'), tie('e')).map(([a, b]) => `concat(${a}, ${b}, axis=-1)`),
    tie('e').map((a) => `slice(${a}, 0, 2, axis=-1)`),
    tie('e').map((a) => `cast(${a}, f16)`),
    tie('e').map((a) => `(grid[T, d](i, j) => ${a.includes('grid') ? 'i' : 'x[i, j]'} + 1.0)`),
  ),
})).e;

const exprModel = (e: string): string => `config {
  d = 4
}
dims T
input x: f32[T, d]
input tok: i32[T]
output y: f32[T, d]
weight w: f32[d, d]
weight g: f32[d]
weight b: f32[d]
weight table: f32[8, d]
model m {
  mask = grid[T, d](i, j) => i <= j
  wrow = table[tok]
  y = ${e}
}
`;

// --- properties -------------------------------------------------------------------------------
describe('front end never throws and always locates its diagnostics', () => {
  it('random token streams (3500 cases)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(token, separator), { maxLength: 60 }), (ts) => {
        run('random token streams', ts.map(([t, s]) => t + s).join(''));
      }),
      { seed: 9001, numRuns: 3500 },
    );
  });

  it('token streams shaped like declarations (1000 cases)', () => {
    const decl = fc.tuple(fc.constantFrom('input', 'output', 'weight', 'fn', 'config {', 'dims', 'model m {'), fc.array(fc.tuple(token, separator), { maxLength: 12 }));
    fc.assert(
      fc.property(fc.array(decl, { maxLength: 6 }), (ds) => {
        run('declaration-shaped streams', ds.map(([k, ts]) => `${k} ${ts.map(([t, s]) => t + s).join('')}\n`).join(''));
      }),
      { seed: 9002, numRuns: 1000 },
    );
  });

  it('random text, including any unicode and control characters (1800 cases)', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 200 }), fc.string({ unit: 'grapheme', maxLength: 100 }), fc.string({ maxLength: 300 })), (s) => {
        run('random text', s);
      }),
      { seed: 9003, numRuns: 1800 },
    );
  });

  it(`mutated examples (${examples.length} files, 2200 cases)`, () => {
    expect(examples.length).toBeGreaterThanOrEqual(12);
    for (const ex of examples) expect(throughFrontEnd(ex.text), ex.file).toBe('compiled');
    fc.assert(
      fc.property(fc.nat({ max: examples.length - 1 }), fc.array(mutation, { minLength: 1, maxLength: 3 }), (which, ms) => {
        const ex = examples[which];
        if (ex === undefined) return;
        run('mutated examples', mutate(ex.text, ms));
      }),
      { seed: 9004, numRuns: 2200 },
    );
  });

  it('generated expressions in a model that otherwise checks (1000 cases)', () => {
    fc.assert(
      fc.property(exprArb, (e) => {
        run('generated expressions', exprModel(e));
      }),
      { seed: 9005, numRuns: 1000 },
    );
  });

  it('huge, tiny and odd numbers as dims, config values and --set values (500 cases)', () => {
    const num = fc.oneof(
      fc.constantFrom('1e400', '99999999999999999999', '1e308', '1.7976931348623157e308', '4294967296', '4294967295', '2147483648', '2147483647', '1e-400', '0', '0.0', '1e20', '65536', '1.5', '3'),
      fc.double({ noNaN: true, noDefaultInfinity: true, min: 0 }).map((v) => String(v)),
      fc.bigInt({ min: 0n, max: 10n ** 30n }).map((v) => v.toString()),
    );
    const setValue = fc.constantFrom(1e300, 1e20, 2 ** 32, 2 ** 31, -1, 0, 0.5, Number.MAX_SAFE_INTEGER + 2, 3);
    fc.assert(
      fc.property(num, num, num, fc.option(setValue), (a, b, c, s) => {
        const text = `config {\n  vocab = ${a}\n  d = ${b}\n  eps = ${c}\n  h = d / 2\n}\ndims T\ninput tok: i32[T]\noutput y: f32[T, d]\nweight wte: f32[vocab, d]\nweight g: f32[${b}]\nmodel m {\n  y = layernorm(wte[tok], g, g, eps=eps) * ${c}\n}\n`;
        run('huge numbers', text, s === null ? undefined : new Map([['d', s]]));
      }),
      { seed: 9006, numRuns: 500 },
    );
  });

  it('odd unicode and keyword identifiers (500 cases)', () => {
    const ident = fc.oneof(
      fc.string({ unit: 'grapheme', minLength: 1, maxLength: 8 }),
      fc.constantFrom('fn', 'struct', 'let', 'var', '__global__', 'class', 'const', 'main', 'workgroup', 'f32', 'i32', 'bool', 'in', 'inf', 'pi', 'select', 'ptr', '_', '__', 'a\u0301', '\u03b1', '\u{1D465}', 'x\u200b', 'Ж', '数'),
    );
    fc.assert(
      fc.property(ident, ident, (a, b) => {
        run('odd identifiers', `dims T\ninput ${a}: f32[T, 4]\noutput ${b}: f32[T, 4]\nfn ${a}${b}(${b}: f32[T, 4]) -> f32[T, 4] {\n  return exp(${b})\n}\nmodel ${b} {\n  ${b} = ${a}${b}(${a})\n}\n`);
      }),
      { seed: 9007, numRuns: 500 },
    );
  });
});

describe('pathological inputs finish with TFC006 or succeed', () => {
  const model = (e: string): string => `dims T\ninput x: f32[T]\noutput y: f32[T]\nmodel m {\n  y = ${e}\n}\n`;
  const chain = (n: number): string => `dims T\ninput x: f32[T]\noutput y: f32[T]\nmodel m {\n  y = x\n${'  y = y + x\n'.repeat(n)}}\n`;
  const codesOf = (text: string): string[] => {
    const r = checkSource(text, fuzzFile);
    for (const d of r.diagnostics) assertLocated(d, fuzzFile, text);
    return [...new Set(r.diagnostics.map((d) => d.code))];
  };
  const cases: [string, string][] = [
    ['5000 nested parentheses', model(`${'('.repeat(5000)}x${')'.repeat(5000)}`)],
    ['5000 unclosed parentheses', model(`${'('.repeat(5000)}x`)],
    ['5000 unary minus', model(`${'-'.repeat(5000)}x`)],
    ['5000 logical not', model(`${'!'.repeat(5000)}x`)],
    ['5000 nested lists', model(`${'['.repeat(5000)}x${']'.repeat(5000)}`)],
    ['2000 nested calls', model(`${'exp('.repeat(2000)}x${')'.repeat(2000)}`)],
    ['10000 chained +', model(Array.from({ length: 10001 }, () => 'x').join(' + '))],
    ['10000 chained *', model(Array.from({ length: 10001 }, () => 'x').join(' * '))],
    ['10000 chained |>', model(`x${' |> exp()'.repeat(10000)}`)],
    ['10000 chained comparisons', model(Array.from({ length: 10001 }, () => 'x').join(' < '))],
    ['5000 index suffixes', model(`x${'[0]'.repeat(5000)}`)],
    ['3000 nested grids', model(`${'grid[T](i) => '.repeat(3000)}x[i]`)],
    ['5000 nested blocks', `model m {\n${'for l in 0..1 {\n'.repeat(5000)}${'}\n'.repeat(5000)}}\n`],
    ['2000 statements in a chain', chain(2000)],
    ['a 1 MiB identifier', model('a'.repeat(1 << 20))],
    ['a 1 MiB number', model('9'.repeat(1 << 20))],
    ['a 1 MiB string', `weight w: f32[1] = "${'s'.repeat(1 << 20)}"\n`],
    ['a 1 MiB comment line', `#${'c'.repeat(1 << 20)}\n`],
    ['100000 empty lines', '\n'.repeat(100000)],
    ['100000 bad characters', '$'.repeat(100000)],
    ['30000 unmatched closers', ')]}'.repeat(10000)],
  ];
  // The front end alone on a 20000-statement chain (the whole pipeline runs on 2000 above; a fused
  // body is capped at MAX_FUSED_OPS nodes, test/unit/robustness/fuse-elementwise-cap.test.ts).
  it('20000 statements (front end only)', () => {
    const text = chain(20000);
    expect(codesOf(text)).toEqual([]);
    tally.add('pathological', 'checked');
  });

  it.each(cases)('%s', (_name, text) => {
    const codes = codesOf(text);
    tally.add('pathological', codes.length === 0 ? 'checked' : 'rejected');
    // Either the nesting cap (TFC006) fires, or the input is an ordinary (in)valid program.
    if (_name.includes('nested') || _name.includes('unary') || _name.includes('logical') || _name.includes('chained') || _name.includes('suffixes') || _name.includes('unclosed')) {
      expect(codes.every((c) => c === 'TFC006') || codes.includes('TFC006') || codes.length === 0).toBe(true);
    }
    if (codes.length === 0) throughFrontEnd(text);
  });

  it('an empty file, only whitespace, only comments: TFC113 (no model) at 1:1, nothing thrown', () => {
    for (const text of ['', '\n', '   \t\r\n', '# only a comment', '# a\n# b\n\n# c\n', '#'.repeat(1000)]) {
      const r = checkSource(text, fuzzFile);
      expect(r.graph).toBeUndefined();
      expect(r.diagnostics.map((d) => d.code)).toContain('TFC113');
      for (const d of r.diagnostics) assertLocated(d, fuzzFile, text);
      tally.add('pathological', 'rejected');
    }
  });
});

describe('case count', () => {
  it('runs at least 10,000 front-end cases per run', () => {
    expect(tally.total()).toBeGreaterThanOrEqual(10_000);
  });
});
