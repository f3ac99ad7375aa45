// Config evaluation: constants in order, int/float division, inf and pi, --set overrides of
// constants (derived ones follow) and of dims (bound to a constant), and the TFC305/TFC215 errors.
import { describe, expect, it } from 'vitest';
import { parseTfx } from '../../../grammar/parse.js';
import { evaluateConfig } from '../../../src/check/config.js';
import { DiagnosticSink } from '../../../src/diag/diagnostic.js';

function evalCfg(src: string, overrides: ReadonlyMap<string, number> = new Map()) {
  const sink = new DiagnosticSink();
  const module = parseTfx(src, 'c.tfx', sink);
  expect(sink.items).toEqual([]);
  const r = evaluateConfig(module, overrides, sink);
  const values = Object.fromEntries([...r.constants].map(([k, v]) => [k, [v.value, v.isInt]]));
  return { values, dims: r.dims, bindings: Object.fromEntries(r.dimBindings), errors: sink.items.map((d) => `${d.code} ${d.loc.line}:${d.loc.col} ${d.message}`) };
}

const src = `config {
  d = 768
  heads = 12
  dh = d / heads
  third = d / 500
  eps = 1e-5
  big = inf
  half_turn = pi
  root = sqrt(dh)
  m = -7 % 3
}
dims B, T
`;

describe('evaluateConfig', () => {
  it('evaluates constants in order; int / int stays an int only when exact', () => {
    const r = evalCfg(src);
    expect(r.errors).toEqual([]);
    expect(r.values).toEqual({
      d: [768, true],
      heads: [12, true],
      dh: [64, true],
      third: [1.536, false],
      eps: [1e-5, false],
      big: [Infinity, false],
      half_turn: [Math.PI, false],
      root: [8, false],
      m: [2, true],
    });
    expect(r.dims).toEqual(['B', 'T']);
  });

  it('applies overrides before derived constants and binds dims', () => {
    const r = evalCfg(src, new Map([['d', 64], ['heads', 4], ['T', 1024]]));
    expect(r.errors).toEqual([]);
    expect(r.values['dh']).toEqual([16, true]);
    expect(r.dims).toEqual(['B']);
    expect(r.bindings).toEqual({ T: 1024 });
  });

  it('reports an unknown override with the closest name (TFC305)', () => {
    const r = evalCfg(src, new Map([['head', 4], ['T', 1.5]]));
    expect(r.errors).toEqual([
      "TFC305 1:1 --set head=4: no config constant or dim named 'head'; did you mean 'heads'?",
      'TFC305 1:1 --set T=1.5: a dim needs a non-negative integer',
    ]);
  });

  it('reports division by zero, use before definition and run-time dims (TFC215, TFC101)', () => {
    const r = evalCfg(`config {
  a = 1 / 0
  b = c + 1
  c = 2
  e = T * 2
  f = a + 1
}
dims T
`);
    expect(r.errors).toEqual([
      'TFC215 2:7 cannot evaluate the config constant: division by zero (1 / 0)',
      "TFC101 3:7 'c' is used before it is defined (config constants are evaluated in order)",
      "TFC215 5:7 config constants cannot depend on the run-time dim 'T'",
    ]);
    expect(r.values).toEqual({ c: [2, true] });
  });
});
