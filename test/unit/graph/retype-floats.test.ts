// retypeFloats (`--dtype f16|bf16`): every f32 in types, casts and lambda values becomes the new
// type, other dtypes stay, constants past the range become +-inf with TFC221, fused graphs are
// refused (TFC314). Starts from IR text and checks the printed result line by line.
import { describe, expect, it } from 'vitest';
import { DiagnosticSink } from '../../../src/diag/diagnostic.js';
import type { Graph } from '../../../src/graph/ir.js';
import { parseGraph } from '../../../src/graph/parse.js';
import { printGraph } from '../../../src/graph/print.js';
import { narrowConstant, retypeFloats } from '../../../src/graph/retype-floats.js';
import { verifyGraph } from '../../../src/graph/verify.js';
import { checkLines } from '../../helpers/check-lines.js';

const text = `graph m(B, T) {
  %0 = input {name="x"} : f32[B,T,8]  loc(m.tfx:1:1)
  %1 = input {name="ids"} : i32[B,T]  loc(m.tfx:2:1)
  %2 = weight {name="w"} : f32[8,4]  loc(m.tfx:3:1)
  %3 = weight {name="h"} : f16[4]  loc(m.tfx:4:1)
  %4 = matmul %0, %2 : f32[B,T,4]  loc(m.tfx:5:5)
  %5 = const {value=-1e9} : f32[]  loc(m.tfx:6:5)
  %6 = const {value=60000.0} : f32[]  loc(m.tfx:7:5)
  %7 = cast %1 {to=f32} : f32[B,T]  loc(m.tfx:8:5)
  %8 = grid %2 {body=(i, j) => gt(mul(read(0, i, j), 0.5), 1e5), shape=dims[8,4]} : bool[8,4]  loc(m.tfx:9:5)
  %9 = grid %2 {body=(i, j) => add(read(0, i, j), cast:f32(i)), shape=dims[8,4]} : f32[8,4]  loc(m.tfx:10:5)
  %10 = where %8, %9, %5 : f32[8,4]  loc(m.tfx:11:5)
  %11 = add %4, %6 : f32[B,T,4]  loc(m.tfx:12:5)
  output "y" = %11  loc(m.tfx:13:1)
  output "z" = %10  loc(m.tfx:14:1)
  output "c" = %7  loc(m.tfx:15:1)
  output "h" = %3  loc(m.tfx:16:1)
}`;

function parsed(src: string): Graph {
  const sink = new DiagnosticSink();
  const g = parseGraph(src, 'm.ir', sink);
  if (g === undefined) throw new Error(sink.items.map((d) => d.message).join('\n'));
  expect(verifyGraph(g)).toEqual([]);
  return g;
}

describe('retypeFloats', () => {
  it('turns every f32 into f16 and leaves i32, bool and declared f16 alone', () => {
    const r = retypeFloats(parsed(text), 'f16');
    if (r.graph === undefined) throw new Error('no graph');
    expect(verifyGraph(r.graph)).toEqual([]);
    const out = printGraph(r.graph, { locs: false });
    checkLines(
      out,
      `CHECK: %0 = input {name="x"} : f16[B,T,8]
       CHECK-NEXT: %1 = input {name="ids"} : i32[B,T]
       CHECK-NEXT: %2 = weight {name="w"} : f16[8,4]
       CHECK-NEXT: %3 = weight {name="h"} : f16[4]
       CHECK-NEXT: %4 = matmul %0, %2 : f16[B,T,4]
       CHECK-NEXT: %5 = const {value=-inf} : f16[]
       CHECK-NEXT: %6 = const {value=60000.0} : f16[]
       CHECK-NEXT: %7 = cast %1 {to=f16} : f16[B,T]
       CHECK-NEXT: %8 = grid %2 {body=(i, j) => gt(mul(read(0, i, j), f16(0.5)), f16(inf)), shape=dims[8,4]} : bool[8,4]
       CHECK-NEXT: %9 = grid %2 {body=(i, j) => add(read(0, i, j), cast:f16(i)), shape=dims[8,4]} : f16[8,4]
       CHECK-NEXT: %10 = where %8, %9, %5 : f16[8,4]
       CHECK-NEXT: %11 = add %4, %6 : f16[B,T,4]
       CHECK-NOT: f32`,
    );
  });

  it('warns (TFC221) at each constant that becomes infinite, and only there', () => {
    const r = retypeFloats(parsed(text), 'f16');
    const ws = r.diagnostics.map((d) => `${d.severity}[${d.code}] ${d.loc.line}:${d.loc.col} ${d.message}`);
    expect(ws).toEqual([
      "warning[TFC221] 6:5 the constant -1e+9 is beyond f16's range (largest finite 65504) and becomes -inf under --dtype f16",
      "warning[TFC221] 9:5 the constant 100000 is beyond f16's range (largest finite 65504) and becomes inf under --dtype f16",
    ]);
  });

  it('keeps every finite f32 constant finite under bf16 (its exponent range is f32s)', () => {
    const r = retypeFloats(parsed(text), 'bf16');
    expect(r.diagnostics).toEqual([]);
    const out = printGraph(r.graph ?? parsed(text), { locs: false });
    checkLines(
      out,
      `CHECK: %5 = const {value=-1000000000.0} : bf16[]
       CHECK: %8 = grid %2 {body=(i, j) => gt(mul(read(0, i, j), bf16(0.5)), bf16(100000.0))`,
    );
  });

  it('rounds to infinity exactly where round-to-nearest f16 does (65520 = 65504 + half an ulp of 32)', () => {
    expect(narrowConstant(65519.99, 'f16')).toBe(65519.99);
    expect(narrowConstant(65520, 'f16')).toBe(Infinity);
    expect(narrowConstant(-65520, 'f16')).toBe(-Infinity);
    expect(narrowConstant(-Infinity, 'f16')).toBe(-Infinity);
    expect(Number.isNaN(narrowConstant(NaN, 'f16'))).toBe(true);
  });

  it('refuses a graph that already holds fused ops (TFC314 at the first one)', () => {
    const fused = `graph m(T) {
  %0 = input {name="x"} : f32[T,4]  loc(m.tfx:1:1)
  %1 = fused_map %0 {body=(i, j) => exp(read(0, i, j)), shape=dims[T,4]} : f32[T,4]  loc(m.tfx:2:7)
  output "y" = %1  loc(m.tfx:3:1)
}`;
    const r = retypeFloats(parsed(fused), 'f16');
    expect(r.graph).toBeUndefined();
    expect(r.diagnostics.map((d) => `${d.code} ${d.loc.line}:${d.loc.col}`)).toEqual(['TFC314 2:7']);
    expect(r.diagnostics[0]?.message).toContain('%1 is fused_map');
  });
});
