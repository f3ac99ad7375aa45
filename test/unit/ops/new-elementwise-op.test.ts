// The catalog owns an elementwise op's semantics (issue 14 item 4): an op defined once, with
// defineElementwise and registered, is callable by name in .tfx (also in a grid body), runs in
// the float64 interpreter, fuses into fused_map and lowers to WGSL, with no other file edited.
// `softplus` is test-only: no file under src/ names it.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTensor, maxRelError } from '../../../src/base/tensor.js';
import { compileModel } from '../../../src/compile/model.js';
import { lowerModel } from '../../../src/compile/kernels.js';
import { DiagnosticSink } from '../../../src/diag/diagnostic.js';
import type { Graph, Node } from '../../../src/graph/ir.js';
import { printScalarExpr } from '../../../src/graph/print.js';
import { interpret } from '../../../src/interp/interpret.js';
import { lavapipeLimits } from '../../../src/kernel/schedule/schedule.js';
import { getBuiltin } from '../../../src/ops/builtins.js';
import { getOp, registerOp } from '../../../src/ops/catalog.js';
import { defineElementwise, geluTanh } from '../../../src/ops/elementwise.js';

// Added for this file only: unit files share processes (vitest.config.ts isolate: false), so the
// op is removed again after it.
let removeOp: (() => void) | undefined;
beforeAll(() => {
  removeOp = registerOp(
    defineElementwise({
      name: 'softplus',
      arity: 1,
      cls: 'float',
      doc: 'log(1 + e^x)',
      builtin: 'log(1 + exp(x)), per element',
      f: (x) => Math.log(1 + Math.exp(x)),
      lower: (b, [x]) => {
        if (x === undefined) throw new Error('softplus takes one operand');
        return b.call('log', [b.binary('add', b.lit(x, 1), b.call('exp', [x]))]);
      },
    }),
  );
});
afterAll(() => removeOp?.());

const softplus = (x: number): number => Math.log1p(Math.exp(x));

const source = `dims T
input x: f32[T, 4]
output y: f32[T, 4]
output z: f32[T, 4]
model m {
  y = softplus(x) * 2.0 + 1.0
  z = grid[T, 4](i, j) => softplus(x[i, j] - 1.0)
}
`;

function compiled(noFuse = false): ReturnType<typeof compileModel> {
  return compileModel({ file: 'softplus.tfx', text: source }, { target: 'webgpu', noFuse, diagnostics: new DiagnosticSink() });
}

const xs = [-3, -0.5, 0, 0.25, 1, 2, 7.5, -12];

/** A fused_map's body as the IR prints it (reads typed by the operands). */
function bodyText(g: Graph, n: Node | undefined): string {
  const b = n?.attrs['body'];
  return n !== undefined && b?.kind === 'lambda' ? printScalarExpr(b.body, b.params, n.operands.map((o) => g.nodes[o]?.type)) : '';
}

describe('an elementwise op added by its catalog entry alone', () => {
  it('no source file names it: the definition above is all there is', () => {
    const files = (dir: string): string[] => readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
    const repo = new URL('../../../', import.meta.url).pathname;
    expect(['src', 'codegen'].flatMap((d) => files(join(repo, d))).filter((f) => readFileSync(f, 'utf8').includes('softplus'))).toEqual([]);
  });

  it('checks, and the interpreter computes it (in a model and in a grid body)', () => {
    const g = compiled(true).ir;
    expect(g.nodes.map((n) => n.op)).toContain('softplus');
    const out = interpret(g, { inputs: new Map([['x', makeTensor('f32', [2, 4], xs)]]), weights: new Map() }).outputs;
    const y = out.get('y');
    const z = out.get('z');
    if (y === undefined || z === undefined) throw new Error('missing outputs');
    expect(maxRelError(y, makeTensor('f32', [2, 4], xs.map((x) => softplus(x) * 2 + 1)))).toBeLessThan(1e-6);
    expect(maxRelError(z, makeTensor('f32', [2, 4], xs.map((x) => softplus(x - 1))))).toBeLessThan(1e-6);
  });

  it('fuses into one fused_map with its neighbours, which computes the same', () => {
    const fused = compiled().graph;
    const maps = fused.nodes.filter((n) => n.op === 'fused_map');
    const bodies = maps.map((n) => bodyText(fused, n));
    expect(bodies.some((b) => /add\(mul\(softplus\(read\(0, i0, i1\)\), 2\.0\), 1\.0\)/.test(b))).toBe(true);
    expect(fused.nodes.filter((n) => n.op === 'softplus')).toEqual([]);
    const feeds = { inputs: new Map([['x', makeTensor('f32', [2, 4], xs)]]), weights: new Map() };
    const a = interpret(compiled(true).ir, feeds).outputs.get('y');
    const b = interpret(fused, feeds).outputs.get('y');
    if (a === undefined || b === undefined) throw new Error('missing outputs');
    expect(maxRelError(b, a)).toBeLessThan(1e-12);
  });

  it('lowers to WGSL through its catalog lowering, fused and unfused', () => {
    for (const noFuse of [false, true]) {
      const wgsl = lowerModel(compiled(noFuse), { limits: lavapipeLimits }).wgsl;
      // log(1 + exp(v)) as the entry's lowering builds it, once per kernel that computes it (y and z).
      expect(wgsl.match(/log\(\(?1\.0f? \+ exp\(/g)?.length).toBe(2);
    }
  });
});

describe('lambda applies carry attributes', () => {
  const gelu = `dims T
input x: f32[T, 4]
output y: f32[T, 4]
model m {
  y = gelu(x, approx="tanh") + 1.0
}
`;
  it('gelu(approx="tanh") fuses as one apply with its attribute, computed by the catalog rule', () => {
    const c = compileModel({ file: 'gelu.tfx', text: gelu }, { target: 'webgpu', diagnostics: new DiagnosticSink() });
    const [map] = c.graph.nodes.filter((n) => n.op === 'fused_map');
    expect(bodyText(c.graph, map)).toBe('add(gelu{approx="tanh"}(read(0, i0, i1)), 1.0)');
    // The printed fused graph parses back (the IR text carries the attribute).
    expect(c.graphText).toContain('gelu{approx="tanh"}(read(0, i0, i1))');
    const y = interpret(c.graph, { inputs: new Map([['x', makeTensor('f32', [2, 4], xs)]]), weights: new Map() }).outputs.get('y');
    if (y === undefined) throw new Error('missing output');
    expect(maxRelError(y, makeTensor('f32', [2, 4], xs.map((x) => geluTanh(x) + 1)))).toBeLessThan(1e-6);
    // One tanh per element in the kernel: the op's lowering, not an erf (the default approx).
    const wgsl = lowerModel(c, { limits: lavapipeLimits }).wgsl;
    expect(wgsl.match(/tanh\(/g)?.length).toBe(1);
    expect(wgsl).not.toMatch(/erf/);
  });
});

describe('removing a registered op', () => {
  it('leaves the catalog and the builtins as they were (the next file in this process sees no softplus)', () => {
    expect(getOp('softplus')?.name).toBe('softplus');
    expect(getBuiltin('softplus')?.lowering).toBe('unary');
    removeOp?.();
    removeOp = undefined;
    expect(getOp('softplus')).toBeUndefined();
    expect(getBuiltin('softplus')).toBeUndefined();
  });
});
