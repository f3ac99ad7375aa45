// split-large-weights: row chunks of weights over the binding limit, from IR text (gather,
// x @ transpose(w), x @ w, w @ x, refusals), and GPT-2 tiny split at a 4 KiB limit equal to the
// unsplit graph under the float64 interpreter.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { checkSource } from '../../../src/check/check-source.js';
import { dimConstValue } from '../../../src/base/dim.js';
import { DiagnosticSink } from '../../../src/diag/diagnostic.js';
import type { Graph } from '../../../src/graph/ir.js';
import { parseGraph } from '../../../src/graph/parse.js';
import { printGraph } from '../../../src/graph/print.js';
import { interpret } from '../../../src/interp/interpret.js';
import { makeTensor, maxRelError } from '../../../src/base/tensor.js';
import { neededTensors } from '../../../src/io/check-tensors.js';
import { randomInputs, randomWeights } from '../../../src/cli/random.js';
import { runPipeline } from '../../../src/passes/driver.js';
import { createPassContext, webgpuDefaultMaxBindingBytes } from '../../../src/passes/pass.js';
import { graphPasses, pipelines } from '../../../src/passes/pipeline.js';
import { rowChunks, splitLargeWeights } from '../../../src/passes/split-large-weights.js';
import { checkLines } from '../../helpers/check-lines.js';
import { ir, runPass } from './helpers.js';

const limited = (bytes: number, diagnostics = new DiagnosticSink()) => createPassContext({ target: 'webgpu', verify: true, maxBindingBytes: bytes, diagnostics });

describe('split-large-weights from IR text', () => {
  it('splits a gather table into chunks selected by where(ids >= start)', () => {
    // f32[6,4] = 96 bytes over a 48-byte limit: two chunks of 3 rows (48 bytes each).
    const out = runPass(
      splitLargeWeights,
      `graph m(T) {
  %0 = input {name="ids"} : i32[T]
  %1 = weight {name="wte"} : f32[6,4]
  %2 = gather %1, %0 : f32[T,4]
  output "y" = %2
}`,
      limited(48),
    );
    checkLines(
      out,
      `CHECK: weight {name="wte", rows=[0,3], total_rows=6} : f32[3,4]
       CHECK-NEXT: weight {name="wte", rows=[3,6], total_rows=6} : f32[3,4]
       CHECK: gather %1,
       CHECK: sub %0,
       CHECK: gather %2,
       CHECK: ge %0,
       CHECK: reshape {{.*}} : bool[T,1]
       CHECK: where`,
    );
    // The unsplit table is gone (weights print first, so only a whole-output scan sees it).
    checkLines(out, 'CHECK-NOT: weight {name="wte"} :');
  });

  it('concats x @ transpose(w) over N and sums x @ w over K', () => {
    const out = runPass(
      splitLargeWeights,
      `graph m(T) {
  %0 = input {name="x"} : f32[T,4]
  %1 = weight {name="wte"} : f32[6,4]
  %2 = permute %1 {perm=[1,0]} : f32[4,6]
  %3 = matmul %0, %2 : f32[T,6]
  %4 = matmul %3, %1 : f32[T,4]
  output "y" = %4
}`,
      limited(48),
    );
    checkLines(
      out,
      `CHECK: permute %1 {perm=[1,0]} : f32[4,3]
       CHECK: permute %2 {perm=[1,0]} : f32[4,3]
       CHECK: concat {{.*}}{axis=1} : f32[T,6]
       CHECK: slice {{.*}}{axis=1, end=dim(3), start=dim(0)} : f32[T,3]
       CHECK: slice {{.*}}{axis=1, end=dim(6), start=dim(3)} : f32[T,3]
       CHECK: add {{.*}} : f32[T,4]`,
    );
  });

  it('leaves weights within the limit and every graph without a limit alone', () => {
    const text = `graph m(T) {
  %0 = input {name="ids"} : i32[T]
  %1 = weight {name="wte"} : f32[6,4]
  %2 = gather %1, %0 : f32[T,4]
  output "y" = %2
}`;
    expect(runPass(splitLargeWeights, text, limited(96))).toBe(printGraph(ir(text), { locs: false }));
    expect(runPass(splitLargeWeights, text, createPassContext({ verify: true }))).toBe(printGraph(ir(text), { locs: false }));
  });

  it('refuses with TFC401 a weight used elementwise, and one whose single row is over the limit', () => {
    const sink = new DiagnosticSink();
    runPass(
      splitLargeWeights,
      `graph m(T) {
  %0 = weight {name="w"} : f32[6,4]
  %1 = exp %0 : f32[6,4]
  %2 = weight {name="wide"} : f32[2,64]
  %3 = neg %2 : f32[2,64]
  output "y" = %1
  output "z" = %3
}`,
      limited(48, sink),
    );
    expect(sink.items.map((d) => d.code)).toEqual(['TFC401', 'TFC401']);
    expect(sink.items[0]?.message).toMatch(/weight 'w' \(f32\[6,4\], 96 bytes\).*used by exp %1/);
    expect(sink.items[1]?.message).toMatch(/weight 'wide'.*one row along axis 0 is too/);
  });

  it('chunks evenly within the limit (GPT-2 small wte at 128 MiB: 2 chunks of at most 25129 rows)', () => {
    const g = ir(`graph m() {
  %0 = weight {name="wte.weight"} : f32[50257,768]
  output "y" = %0
}`);
    const w = g.nodes[0];
    if (w === undefined) throw new Error('no node');
    const chunks = rowChunks(w.type, webgpuDefaultMaxBindingBytes);
    expect(chunks).toEqual([
      { start: 0, end: 25129 },
      { start: 25129, end: 50257 },
    ]);
    for (const c of chunks ?? []) expect((c.end - c.start) * 768 * 4).toBeLessThanOrEqual(134217728);
  });

  it('interprets a row chunk as the rows of the fed table', () => {
    const sink = new DiagnosticSink();
    const g = parseGraph(
      `graph m() {
  %0 = weight {name="w", rows=[1,3], total_rows=4} : f32[2,2]
  output "y" = %0
}`,
      't.ir',
      sink,
    );
    expect(sink.items).toEqual([]);
    if (g === undefined) throw new Error('no graph');
    const r = interpret(g, { inputs: new Map(), weights: new Map([['w', makeTensor('f32', [4, 2], [0, 1, 2, 3, 4, 5, 6, 7])]]) });
    expect([...(r.outputs.get('y')?.data ?? [])]).toEqual([2, 3, 4, 5]);
  });
});

const tiny = new Map([['layers', 2], ['d', 32], ['heads', 4], ['vocab', 64], ['ctx', 16]]);

function gpt2Tiny(): Graph {
  const file = 'examples/gpt2.tfx';
  const r = checkSource(readFileSync(file, 'utf8'), file, tiny);
  expect(r.diagnostics.map((d) => d.message)).toEqual([]);
  if (r.graph === undefined) throw new Error('no graph');
  return r.graph;
}

describe('GPT-2 tiny split at a 4 KiB limit', () => {
  it('equals the unsplit graph under the float64 interpreter (1e-9 relative)', () => {
    const g = gpt2Tiny();
    const dims = new Map([['B', 2], ['T', 5]]);
    const ds: never[] = [];
    const needed = neededTensors(g);
    const weights = randomWeights(needed, 3, dims, ds);
    const inputs = randomInputs(g, needed, 4, dims, ds);
    const split = runPipeline(g, pipelines.webgpu, limited(4096));
    // Every weight over 4 KiB (wte, wpe, c_attn, c_proj, c_fc, mlp c_proj) is gone as a whole.
    const whole = split.nodes.filter((n) => n.op === 'weight' && n.attrs['rows'] === undefined);
    for (const n of whole) expect(n.type.shape.reduce((a, d) => a * (dimConstValue(d) ?? Infinity), 4)).toBeLessThanOrEqual(4096);
    expect(split.nodes.filter((n) => n.op === 'weight' && n.attrs['rows'] !== undefined).length).toBeGreaterThan(20);
    const a = interpret(runPipeline(g, graphPasses, createPassContext({ verify: true })), { inputs, weights });
    const b = interpret(split, { inputs, weights });
    for (const [name, want] of a.outputs) {
      const got = b.outputs.get(name);
      if (got === undefined) throw new Error(`no output ${name}`);
      expect(maxRelError(got, want), name).toBeLessThan(1e-9);
    }
  });
});
