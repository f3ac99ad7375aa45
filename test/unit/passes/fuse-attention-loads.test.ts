// fuse-attention-loads: a fused_map read only as attention's q becomes the attention's `qload`
// lambda (RoPE computed where Q is loaded). Pass tests from IR text, the printed form reads back,
// the catalog's interpreter gives what the unfused graph gives, and the verifier's checks.
import { describe, expect, it } from 'vitest';
import { DiagnosticSink } from '../../../src/diag/diagnostic.js';
import type { Graph } from '../../../src/graph/ir.js';
import { parseGraph } from '../../../src/graph/parse.js';
import { verifyGraph } from '../../../src/graph/verify.js';
import { interpret } from '../../../src/interp/interpret.js';
import { makeTensor, maxRelError } from '../../../src/base/tensor.js';
import { runPipeline } from '../../../src/passes/driver.js';
import { fuseAttentionLoads } from '../../../src/passes/fuse-attention-loads.js';
import { createPassContext, type Remark } from '../../../src/passes/pass.js';
import { checkLines } from '../../helpers/check-lines.js';
import { expectPrintParsesBack, ir, runPass, sinFill } from './helpers.js';

// rope-like q: x * c + rotate_half(x) * s over a head width of 4 (halves of 2), causal mask.
const ropeAttention = (extraUse: boolean): string => `graph m(T) {
  %0 = input {name="x"} : f32[1,2,T,4]
  %1 = input {name="k"} : f32[1,1,T,4]
  %2 = input {name="v"} : f32[1,1,T,4]
  %3 = input {name="c"} : f32[T,4]
  %4 = input {name="s"} : f32[T,4]
  %5 = fused_map %0, %3, %4 {body=(i0, i1, i2, i3) => add(mul(read(0, i0, i1, i2, i3), read(1, i2, i3)), mul(where(lt(i3, 2), neg(read(0, i0, i1, i2, add(i3, 2))), read(0, i0, i1, i2, sub(i3, 2))), read(2, i2, i3))), shape=dims[1,2,T,4]} : f32[1,2,T,4]
  %6 = fused_attention %5, %1, %2 {mask=(b, h, q, k) => le(k, q), scale=0.5} : f32[1,2,T,4]
  output "o" = %6${extraUse ? '\n  output "q" = %5' : ''}
}`;

describe('fuse-attention-loads', () => {
  it("moves rope(q) into the attention's qload: fused_map operand 0 stays 0, the others follow k, v", () => {
    const out = runPass(fuseAttentionLoads, ropeAttention(false));
    checkLines(
      out,
      `CHECK-NOT: fused_map
       CHECK: %5 = fused_attention %0, %1, %2, %3, %4 {mask=(b, h, q, k) => le(k, q), qload=(b, h, t, d) => add(mul(read(0, b, h, t, d), read(3, t, d)), mul(where(lt(d, 2), neg(read(0, b, h, t, add(d, 2))), read(0, b, h, t, sub(d, 2))), read(4, t, d))), qshape=dims[1,2,T,4], scale=0.5} : f32[1,2,T,4]`,
    );
  });

  it('leaves a fused_map that is also a graph output, with a remark', () => {
    const remarks: Remark[] = [];
    const out = runPass(fuseAttentionLoads, ropeAttention(true), createPassContext({ verify: true, remark: (r) => remarks.push(r) }));
    checkLines(out, `CHECK: %5 = fused_map\nCHECK: %6 = fused_attention %5, %1, %2 {mask`);
    expect(remarks.map((r) => r.message)).toEqual(["fused_map feeding attention's q not computed at load: it is a graph output"]);
  });

  it('prints qload/qshape so that they parse back to the same graph', () => {
    const g = runPipeline(ir(ropeAttention(false)), [fuseAttentionLoads], createPassContext({ verify: true }));
    expectPrintParsesBack(g);
  });

  it('gives the interpreter the unfused values (Q computed by the catalog rule, then attention)', () => {
    const before: Graph = ir(ropeAttention(false));
    const after = runPipeline(before, [fuseAttentionLoads], createPassContext({ verify: true }));
    expect(after.nodes.some((n) => n.op === 'fused_map')).toBe(false);
    const T = 5;
    const inputs = new Map([
      ['x', makeTensor('f32', [1, 2, T, 4], sinFill([1, 2, T, 4], 1))],
      ['k', makeTensor('f32', [1, 1, T, 4], sinFill([1, 1, T, 4], 2))],
      ['v', makeTensor('f32', [1, 1, T, 4], sinFill([1, 1, T, 4], 3))],
      ['c', makeTensor('f32', [T, 4], sinFill([T, 4], 4))],
      ['s', makeTensor('f32', [T, 4], sinFill([T, 4], 5))],
    ]);
    const want = interpret(before, { inputs, weights: new Map() }).outputs.get('o');
    const got = interpret(after, { inputs, weights: new Map() }).outputs.get('o');
    if (want === undefined || got === undefined) throw new Error('no output');
    // The same float64 operations in the same order.
    expect(maxRelError(got, want)).toBe(0);
    expect(want.data.some((x) => x !== 0)).toBe(true);
  });

  it('rejects a qload without qshape (verifier)', () => {
    const sink = new DiagnosticSink();
    const g = parseGraph(
      `graph m(T) {
  %0 = input {name="x"} : f32[1,2,T,4]
  %1 = input {name="k"} : f32[1,1,T,4]
  %2 = fused_attention %0, %1, %1 {qload=(b, h, t, d) => read(0, b, h, t, d), scale=0.5} : f32[1,2,T,4]
  output "o" = %2
}`,
      't.ir',
      sink,
    );
    if (g === undefined) throw new Error('the text itself is well formed');
    expect(verifyGraph(g).join("\n")).toContain("fused_attention's 'qload' is a lambda and comes with 'qshape' dims");
  });
});
