// Printer goldens: small hand-built graphs printed with printGraph, compared with files under
// test/golden/ir/ (`npx vitest run test/unit/graph -u` rewrites them; review the diff). Each
// golden also parses back to the same graph and is valid.
import { describe, expect, it } from 'vitest';
import { DiagnosticSink } from '../../../src/diag/diagnostic.js';
import type { Graph } from '../../../src/graph/ir.js';
import { parseGraph } from '../../../src/graph/parse.js';
import { printFloat, printGraph } from '../../../src/graph/print.js';
import { verifyGraph } from '../../../src/graph/verify.js';
import { A, HandGraph, S, span, ty } from './build-helpers.js';

interface Case {
  readonly name: string;
  readonly shows: string;
  readonly graph: Graph;
  readonly locs?: boolean;
}

function embedMatmul(): Graph {
  const h = new HandGraph('gpt2', ['B', 'T']);
  const tok = h.add('input', [], { name: A.str('tokens') }, ty('i32', 'B', 'T'), span(12, 1, 25, 'gpt2.tfx'));
  const wte = h.add('weight', [], { name: A.str('wte.weight') }, ty('f32', '256', '64'), span(15, 1, 40, 'gpt2.tfx'));
  const x = h.add('gather', [wte, tok], {}, ty('f32', 'B', 'T', '64'), span(30, 7, 17, 'gpt2.tfx'));
  const g = h.add('weight', [], { name: A.str('ln_f.weight') }, ty('f32', '64'), span(16, 1, 30, 'gpt2.tfx'));
  const b = h.add('weight', [], { name: A.str('ln_f.bias') }, ty('f32', '64'), span(17, 1, 30, 'gpt2.tfx'));
  const n = h.add('layernorm', [x, g, b], { eps: A.float(1e-5) }, ty('f32', 'B', 'T', '64'), span(31, 7, 30, 'gpt2.tfx'));
  const wt = h.add('permute', [wte], { perm: A.ints(1, 0) }, ty('f32', '64', '256'), span(32, 16, 29, 'gpt2.tfx'));
  const logits = h.add('matmul', [n, wt], {}, ty('f32', 'B', 'T', '256'), span(32, 12, 29, 'gpt2.tfx'));
  h.out('logits', logits, span(32, 3, 29, 'gpt2.tfx'));
  return h.graph();
}

function causalGrid(): Graph {
  // grid[T, S](q, k) => k <= q + (S - T)   and an ALiBi-style grid that reads a weight
  const h = new HandGraph('masks', ['B', 'S', 'T']);
  const mask = h.add(
    'grid',
    [],
    { shape: A.dims('T', 'S'), body: A.lambda(['q', 'k'], S.ap('le', 'bool', S.idx(1), S.ap('add', 'i32', S.idx(0), S.dim('S-T')))) },
    ty('bool', 'T', 'S'),
    span(5, 10, 40),
  );
  const slope = h.add('weight', [], { name: A.str('slopes') }, ty('f32', '4'), span(3, 1, 20));
  const alibi = h.add(
    'grid',
    [slope],
    {
      shape: A.dims('4', 'T', 'S'),
      body: A.lambda(['h', 'q', 'k'], S.ap('mul', 'f32', S.read(0, 'f32', S.idx(0)), S.ap('cast', 'f32', S.ap('sub', 'i32', S.idx(2), S.idx(1))))),
    },
    ty('f32', '4', 'T', 'S'),
    { file: 'm.tfx', line: 6, col: 10, endLine: 7, endCol: 30 },
  );
  const ninf = h.add('const', [], { value: A.float(-Infinity) }, ty('f32'), span(8, 30, 33));
  const s = h.add('input', [], { name: A.str('scores') }, ty('f32', 'B', '4', 'T', 'S'), span(2, 1, 30));
  const biased = h.add('add', [s, alibi], {}, ty('f32', 'B', '4', 'T', 'S'), span(8, 10));
  const masked = h.add('where', [mask, biased, ninf], {}, ty('f32', 'B', '4', 'T', 'S'), span(8, 3, 34));
  const p = h.add('softmax', [masked], { axis: A.int(3) }, ty('f32', 'B', '4', 'T', 'S'), span(9, 3, 20));
  h.out('probs', p, span(10, 3));
  return h.graph();
}

function constants(): Graph {
  const h = new HandGraph('consts', []);
  const vals = [0.5, 1, -0, 1e-5, 1e21, 5e-324, Number.NaN, Infinity, 0.1 + 0.2];
  const ids = vals.map((v, i) => h.add('const', [], { value: A.float(v) }, ty('f32'), span(i + 1, 5)));
  const half = h.add('const', [], { value: A.float(0.5) }, ty('f16'), span(20, 5));
  const sum = h.add('add', [ids[0] ?? 0, ids[1] ?? 0], {}, ty('f32'), span(21, 5));
  const c16 = h.add('cast', [sum], { to: A.dtype('f16') }, ty('f16'), span(22, 5));
  const m = h.add('max', [c16, half], {}, ty('f16'), span(23, 5));
  const g = h.add('gelu', [m], { approx: A.str('tanh') }, ty('f16'), span(24, 5));
  h.out('y', g, span(25, 3));
  h.out('weird "name"\n\u00e9', ids[2] ?? 0, span(26, 3, 5, 'dir with space/m.tfx'));
  return h.graph();
}

function familyCache(): Graph {
  // A KV-cache family: present.{l}.key for l in 0..2, with symbolic P+T.
  const h = new HandGraph('decode', ['B', 'P', 'T']);
  for (let l = 0; l < 2; l++) {
    const past = h.add('input', [], { name: A.str(`past.${l}.key`) }, ty('f32', 'B', '4', 'P', '16'), span(4, 1, 60));
    const k = h.add('input', [], { name: A.str(`new.${l}.key`) }, ty('f32', 'B', '4', 'T', '16'), span(5, 1, 60));
    const cat = h.add('concat', [past, k], { axis: A.int(2) }, ty('f32', 'B', '4', 'P+T', '16'), span(20, 9, 40));
    const last = h.add('slice', [cat], { axis: A.int(2), start: A.dim('P'), end: A.dim('P+T') }, ty('f32', 'B', '4', 'T', '16'), span(21, 9, 40));
    const r = h.add('reshape', [last], { shape: A.dims('B', '4*T', '16') }, ty('f32', 'B', '4*T', '16'), span(22, 9, 40));
    const sm = h.add('sum', [r], { axes: A.ints(1), keepdims: A.bool(false) }, ty('f32', 'B', '16'), span(23, 9, 40));
    h.out(`present.${l}.key`, cat, span(30, 3, 20));
    h.out(`total.${l}`, sm, span(31, 3, 20));
  }
  const pos = h.add('arange', [], { start: A.dim('P'), end: A.dim('P+T') }, ty('i32', 'T'), span(40, 7, 20));
  h.out('positions', pos, span(41, 3));
  return h.graph();
}

const cases: readonly Case[] = [
  { name: 'embed-matmul', shows: 'an embedding, layernorm and tied LM head with full locs', graph: embedMatmul() },
  { name: 'grid-masks', shows: 'grid lambdas: a causal mask with an S-T offset and an ALiBi bias reading a weight', graph: causalGrid() },
  { name: 'constants', shows: 'float consts that must round-trip exactly (-0.0, nan, inf, 0.30000000000000004), dtypes, escaped names', graph: constants() },
  { name: 'family-cache', shows: 'family-named inputs/outputs and symbolic dims such as P+T and 4*T', graph: familyCache() },
  { name: 'embed-matmul-no-locs', shows: 'the same graph printed with locs hidden', graph: embedMatmul(), locs: false },
];

describe('printGraph goldens', () => {
  for (const c of cases) {
    it(`prints ${c.name}: ${c.shows}`, async () => {
      const text = printGraph(c.graph, { locs: c.locs ?? true });
      await expect(`// ${c.shows}\n${text}`).toMatchFileSnapshot(`../../golden/ir/${c.name}.ir`);
    });
    it(`${c.name} is valid and parses back to the same graph`, () => {
      expect(verifyGraph(c.graph)).toEqual([]);
      const text = printGraph(c.graph, { locs: c.locs ?? true });
      const sink = new DiagnosticSink();
      const back = parseGraph(`// ${c.shows}\n${text}`, `${c.name}.ir`, sink);
      expect(sink.items).toEqual([]);
      expect(back).toBeDefined();
      if (back === undefined) return;
      expect(printGraph(back, { locs: c.locs ?? true })).toBe(text);
      if (c.locs ?? true) expect(back).toEqual(c.graph);
    });
  }
});

describe('printGraph details', () => {
  it('prints the same text twice (deterministic)', () => {
    expect(printGraph(causalGrid())).toBe(printGraph(causalGrid()));
  });
  it('sorts attributes by key whatever the insertion order', () => {
    const h = new HandGraph('g', ['T']);
    const x = h.add('input', [], { name: A.str('x') }, ty('f32', 'T'));
    h.add('slice', [x], { start: A.dim('0'), end: A.dim('T'), axis: A.int(0) }, ty('f32', 'T'));
    expect(printGraph(h.graph(), { locs: false })).toContain('slice %0 {axis=0, end=dim(T), start=dim(0)} : f32[T]');
  });
  it('prints floats with shortest round-trip digits and a float marker', () => {
    const samples = [0, -0, 1, -1, 0.1, 1e-5, 1e-7, 1e21, 123456789012, 5e-324, Number.MAX_VALUE, Math.PI, Math.fround(0.1)];
    for (const v of samples) {
      const s = printFloat(v);
      expect(s).toMatch(/[.e]|inf|nan/);
      expect(Object.is(Number(s), v)).toBe(true);
    }
    expect(printFloat(1)).toBe('1.0');
    expect(printFloat(-0)).toBe('-0.0');
    expect(printFloat(1e-5)).toBe('0.00001');
    expect(printFloat(-Infinity)).toBe('-inf');
    expect(printFloat(Number.NaN)).toBe('nan');
  });
});
