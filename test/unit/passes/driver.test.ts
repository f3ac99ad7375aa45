// The pass driver: dumps after the requested passes (and the dump parses back), verification
// after every pass with an InternalError naming the pass and holding its input IR, timings, and
// the rule engine's fixed-point cap.
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { DiagnosticSink, InternalError } from '../../../src/diag/diagnostic.js';
import type { Graph } from '../../../src/graph/ir.js';
import { parseGraph } from '../../../src/graph/parse.js';
import { printGraph } from '../../../src/graph/print.js';
import { dumpHeader, runPipeline } from '../../../src/passes/driver.js';
import { type GraphPass, createPassContext } from '../../../src/passes/pass.js';
import { graphPasses, pipelines } from '../../../src/passes/pipeline.js';
import { applyRules, defineRule } from '../../../src/passes/rules.js';
import { checkLines } from '../../helpers/check-lines.js';
import { ir } from './helpers.js';

const model = `graph m(T) {
  %0 = input {name="x"} : f32[T]  loc(m.tfx:1:1)
  %1 = const {value=1.0} : f32[]  loc(m.tfx:2:1)
  %2 = mul %0, %1 : f32[T]  loc(m.tfx:3:1)
  %3 = exp %2 : f32[T]  loc(m.tfx:4:1)
  %4 = exp %2 : f32[T]  loc(m.tfx:5:1)
  %5 = add %3, %4 : f32[T]  loc(m.tfx:6:1)
  %6 = log %5 : f32[T]  loc(m.tfx:7:1)
  output "y" = %5  loc(m.tfx:8:1)
}`;

/** A buggy pass: changes a node's type without changing its op. */
const breakTypes: GraphPass = {
  name: 'break-types',
  summary: 'test only',
  run: (g) => ({ ...g, nodes: g.nodes.map((n) => (n.op === 'exp' ? { ...n, type: { ...n.type, dtype: 'f16' } } : n)) }),
};

const throws: GraphPass = {
  name: 'throws',
  summary: 'test only',
  run: () => {
    throw new Error('boom');
  },
};

describe('runPipeline', () => {
  it('runs the shared graph passes to a clean graph', () => {
    const out = runPipeline(ir(model), graphPasses, createPassContext({ verify: true }));
    const text = printGraph(out, { locs: false });
    checkLines(text, 'CHECK: %1 = exp %0\nCHECK-NEXT: %2 = add %1, %1\nCHECK-NEXT: output "y" = %2');
    checkLines(text, 'CHECK-NOT: log');
  });

  it('dumps after the named passes with the MLIR-style header, and the dump parses back', () => {
    const dumps: string[] = [];
    const ctx = createPassContext({ verify: true, dumpAfter: ['eliminate-common-subexpressions'], dump: (t) => dumps.push(t) });
    runPipeline(ir(model), graphPasses, ctx);
    expect(dumps).toHaveLength(1);
    const dump = dumps[0] ?? '';
    expect(dump.split('\n')[0]).toBe('// -----// IR Dump After eliminate-common-subexpressions //----- //');
    checkLines(dump, 'CHECK: IR Dump After eliminate-common-subexpressions\nCHECK-NEXT: graph m(T) {\nCHECK: add %1, %1\nCHECK: log');
    const sink = new DiagnosticSink();
    const back = parseGraph(dump, 'dump.ir', sink);
    expect(sink.items).toEqual([]);
    expect(back === undefined ? '' : printGraph(back)).toBe(dump.slice(dump.indexOf('\n') + 1));
  });

  it("dumps after every pass with 'all', in pipeline order", () => {
    const dumps: string[] = [];
    runPipeline(ir(model), graphPasses, createPassContext({ verify: true, dumpAfter: 'all', dump: (t) => dumps.push(t) }));
    expect(dumps.map((d) => d.split('\n')[0])).toEqual(graphPasses.map((p) => dumpHeader(p.name)));
  });

  it('records one timing per pass', () => {
    const ctx = createPassContext({ verify: true });
    runPipeline(ir(model), graphPasses, ctx);
    expect(ctx.stats.timings.map((t) => t.pass)).toEqual(graphPasses.map((p) => p.name));
    expect(ctx.stats.timings.every((t) => t.ms >= 0)).toBe(true);
  });

  it('reports a verifier failure as an InternalError naming the pass, with its input IR', () => {
    const input = ir(model);
    let err: unknown;
    try {
      runPipeline(input, [graphPasses[0] as GraphPass, breakTypes], createPassContext({ verify: true }));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InternalError);
    const e = err as InternalError;
    expect(e.pass).toBe('break-types');
    checkLines(
      e.message,
      `CHECK: internal compiler error in pass break-types: the IR it produced fails verification:
       CHECK-NEXT: %1 (exp): type is f16[T], but 'exp' infers f32[T]
       CHECK: // -----// IR input of break-types //----- //
       CHECK-NEXT: graph m(T) {
       CHECK: %1 = exp %0 : f32[T]  loc(m.tfx:4:1)`,
    );
  });

  it('does not verify when verify is off', () => {
    const out = runPipeline(ir(model), [breakTypes], createPassContext({ verify: false }));
    expect(out.nodes.some((n) => n.type.dtype === 'f16')).toBe(true);
  });

  it('wraps an exception thrown by a pass into an InternalError with the input IR', () => {
    expect(() => runPipeline(ir(model), [throws], createPassContext({ verify: true }))).toThrow(
      /internal compiler error in pass throws: boom\n\/\/ -----\/\/ IR input of throws \/\/----- \/\/\ngraph m\(T\)/,
    );
  });

  it('does not mutate its input graph (frozen)', () => {
    const input: Graph = ir(model);
    const before = printGraph(input);
    runPipeline(input, graphPasses, createPassContext({ verify: true }));
    expect(printGraph(input)).toBe(before);
  });
});

describe('applyRules', () => {
  it('throws an InternalError when rules never reach a fixed point', () => {
    // exp(x) -> exp(x) as a new node: fires on every sweep.
    const spin = defineRule({
      name: 'spin',
      match: (node) => (node.op === 'exp' ? node : undefined),
      rewrite: (node, _m, ctx) => ctx.emit({ op: node.op, operands: node.operands, attrs: node.attrs, type: node.type }),
    });
    expect(() => applyRules(ir(model), [spin], createPassContext(), { pass: 'spin-pass', maxSweeps: 5 })).toThrow(
      'rules of spin-pass did not reach a fixed point in 5 sweeps',
    );
  });

  it('rejects a rewrite that changes the type', () => {
    const bad = defineRule({ name: 'bad', match: (node) => (node.op === 'exp' ? 1 : undefined), rewrite: (_n, id) => id });
    expect(() => applyRules(ir(model), [bad], createPassContext(), { pass: 'p' })).toThrow(/rule bad replaced %3 \(exp\) of type f32\[T\] by a value of type f32\[\]/);
  });
});

describe('pipelines', () => {
  it('has one flat list per target, sharing the graph passes', () => {
    for (const target of ['interp', 'webgpu', 'cuda'] as const) {
      expect(pipelines[target].slice(0, graphPasses.length)).toEqual(graphPasses);
    }
  });
  it('names every pass after its file, uniquely', () => {
    const dir = join(dirname(fileURLToPath(import.meta.url)), '../../../src/passes');
    const files = new Set(readdirSync(dir).map((f) => f.replace(/\.ts$/, '')));
    const names = Object.values(pipelines).flatMap((ps) => ps.map((p) => p.name));
    for (const n of names) expect(files.has(n)).toBe(true);
    expect(new Set(graphPasses.map((p) => p.name)).size).toBe(graphPasses.length);
  });
});
