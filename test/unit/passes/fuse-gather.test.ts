// fuse-elementwise absorbing `gather` (a data-dependent read at a clamped row) and `arange` (the
// index expression start + i): GPT-2's embedding wte[tokens] + wpe[arange(T)] becomes one fused_map.
// Expected values come from the float64 interpreter on the unfused graph.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { checkSource } from '../../../src/check/check-source.js';
import type { Graph } from '../../../src/graph/ir.js';
import { printGraph } from '../../../src/graph/print.js';
import { interpret } from '../../../src/interp/interpret.js';
import { makeTensor, maxRelError, type Tensor64 } from '../../../src/base/tensor.js';
import { runPipeline } from '../../../src/passes/driver.js';
import { fuseElementwise } from '../../../src/passes/fuse-elementwise.js';
import { createPassContext } from '../../../src/passes/pass.js';
import { pipelines } from '../../../src/passes/pipeline.js';
import { checkLines } from '../../helpers/check-lines.js';
import { ir } from './helpers.js';

// wte f32[16,4], wpe f32[8,4]; positions start at 2 (arange(2, T + 2)).
const embeddingIr = `graph m(B, T) {
  %0 = input {name="tokens"} : i32[B,T]
  %1 = weight {name="wte"} : f32[16,4]
  %2 = weight {name="wpe"} : f32[8,4]
  %3 = gather %1, %0 : f32[B,T,4]
  %4 = arange {end=dim(T + 2), start=dim(2)} : i32[T]
  %5 = gather %2, %4 : f32[T,4]
  %6 = add %3, %5 : f32[B,T,4]
  output "x" = %6
}`;

const fuse = (g: Graph): Graph => runPipeline(g, [fuseElementwise], createPassContext({ verify: true }));

function embeddingWeights(): Map<string, Tensor64> {
  const table = (rows: number, scale: number): Tensor64 =>
    makeTensor('f32', [rows, 4], Array.from({ length: rows * 4 }, (_, i) => Math.sin(i * scale) + i / 7));
  return new Map([['wte', table(16, 0.37)], ['wpe', table(8, 1.3)]]);
}
const tokens = (ids: number[]): Map<string, Tensor64> => new Map([['tokens', makeTensor('i32', [2, ids.length / 2], ids)]]);

describe('fuse-elementwise with gather and arange', () => {
  it('turns the embedding (2 gathers, arange, add) into one fused_map with clamped data-dependent reads', () => {
    const out = printGraph(fuse(ir(embeddingIr)), { locs: false });
    checkLines(
      out,
      `CHECK: %3 = fused_map %1, %0, %2 {body=(i0, i1, i2) => add(read(0, min(max(read(1, i0, i1), 0), 15), i2), read(2, min(max(add(i1, dim(2)), 0), 7), i2)), shape=dims[B,T,4]} : f32[B,T,4]
       CHECK-NEXT: output "x" = %3`,
    );
    checkLines(out, 'CHECK-NOT: gather\nCHECK-NOT: arange');
  });

  it('equals the unfused graph under the float64 interpreter', () => {
    const g = ir(embeddingIr);
    const fused = fuse(g);
    expect(fused.nodes.filter((n) => n.op === 'fused_map').length).toBe(1);
    const feeds = { inputs: tokens([3, 0, 15, 7, 7, 1]), weights: embeddingWeights() };
    const want = interpret(g, feeds).outputs.get('x');
    const got = interpret(fused, feeds).outputs.get('x');
    if (want === undefined || got === undefined) throw new Error('no output');
    expect(maxRelError(got, want)).toBe(0); // the same float64 reads and one add
  });

  it('reads a clamped row for an out-of-range id, as the gather kernel does (the unfused interpreter reports it)', () => {
    const g = ir(embeddingIr);
    expect(() => interpret(g, { inputs: tokens([-3, 99, 5, 16, 2, 0]), weights: embeddingWeights() })).toThrow(/out of range/);
    const got = interpret(fuse(g), { inputs: tokens([-3, 99, 5, 16, 2, 0]), weights: embeddingWeights() }).outputs.get('x');
    const want = interpret(g, { inputs: tokens([0, 15, 5, 15, 2, 0]), weights: embeddingWeights() }).outputs.get('x');
    if (want === undefined || got === undefined) throw new Error('no output');
    expect(maxRelError(got, want)).toBe(0);
  });

  it('leaves a lone gather and an arange that is a graph output as they were', () => {
    const out = printGraph(
      fuse(
        ir(`graph m(T) {
  %0 = input {name="tokens"} : i32[T]
  %1 = weight {name="wte"} : f32[16,4]
  %2 = gather %1, %0 : f32[T,4]
  %3 = arange {end=dim(T), start=dim(0)} : i32[T]
  output "x" = %2
  output "p" = %3
}`),
      ),
      { locs: false },
    );
    checkLines(out, `CHECK: %2 = gather %1, %0 : f32[T,4]\nCHECK: arange`);
    checkLines(out, 'CHECK-NOT: fused_map');
  });
});

describe('GPT-2 tiny after the webgpu pipeline', () => {
  it('computes the embedding in one fused_map: no gather or arange node is left', () => {
    const r = checkSource(readFileSync('examples/gpt2.tfx', 'utf8'), 'examples/gpt2.tfx', new Map([['layers', 1], ['d', 32], ['heads', 4], ['vocab', 64], ['ctx', 16]]));
    if (r.graph === undefined) throw new Error('no graph');
    const g = runPipeline(r.graph, pipelines.webgpu, createPassContext({ target: 'webgpu', verify: true }));
    expect(g.nodes.filter((n) => n.op === 'gather' || n.op === 'arange').map((n) => n.op)).toEqual([]);
    checkLines(printGraph(g, { locs: false }), 'CHECK: fused_map {{.*}} => add(read(0, min(max(read(1, i0, i1), 0), 63), i2), read(2, min(max(i1, 0), 15), i2))');
  });
});
