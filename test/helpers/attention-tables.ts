// A fused attention backward with two learned score-mod tables (attention/backward-table.ts) as IR
// text, shared by the WebGPU and CUDA-emulator tests: GQA 4/2, a window of 5, s * temp[h] +
// bias[k] (two tables; temp's adjoint is score()), the forward kernel giving o and its LSE.
// With `bias` = 600, 604 entries over 32 threads (4x8 tiles, 4 lanes) take the global partial rows.
import { expect } from 'vitest';
import { DiagnosticSink } from '../../src/diag/diagnostic.js';
import type { Graph } from '../../src/graph/ir.js';
import { parseGraph } from '../../src/graph/parse.js';

export const tableTiles = { tileRows: 4, tileCols: 8, lanes: 4 };

export function tablesGraph(bias: number): Graph {
  const text = `graph attn(B, T) {
  %0 = input {name="q"} : f32[B,4,T,8]
  %1 = input {name="k"} : f32[B,2,T,8]
  %2 = input {name="v"} : f32[B,2,T,4]
  %3 = input {name="temp"} : f32[4]
  %4 = input {name="bias"} : f32[${bias}]
  %5 = fused_attention %0, %1, %2, %3, %4 {mask=(b, h, q, k) => and(le(k, q), lt(sub(q, k), 5)), scale=0.35, score=(b, h, q, k) => add(mul(score(), read(3, h)), read(4, k))} : f32[B,4,T,4]
  %6 = fused_attention_lse %5 : f32[B,4,T]
  %7 = input {name="do"} : f32[B,4,T,4]
  %8 = fused_attention_grad %0, %1, %2, %5, %6, %7, %3, %4 {dscore=(b, h, q, k) => read(6, h), mask=(b, h, q, k) => and(le(k, q), lt(sub(q, k), 5)), scale=0.35, score=(b, h, q, k) => add(mul(score(), read(6, h)), read(7, k)), table_grads=[6, 7]} : f32[B,4,T,8]
  %9 = fused_attention_grad_k %8 : f32[B,2,T,8]
  %10 = fused_attention_grad_v %8 : f32[B,2,T,4]
  %11 = fused_attention_grad_t %8 {operand=6} : f32[4]
  %12 = fused_attention_grad_t %8 {operand=7} : f32[${bias}]
  output "dq" = %8
  output "dk" = %9
  output "dv" = %10
  output "dtemp" = %11
  output "dbias" = %12
}`;
  const sink = new DiagnosticSink();
  const g = parseGraph(text, 'tables.ir', sink);
  expect(sink.items.map((d) => d.message)).toEqual([]);
  if (g === undefined) throw new Error('no graph');
  return g;
}
