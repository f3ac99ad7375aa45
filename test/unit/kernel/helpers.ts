// Builds small graphs for the kernel tests from IR text (src/graph/parse.ts).
import { DiagnosticSink } from '../../../src/diag/diagnostic.js';
import type { Graph } from '../../../src/graph/ir.js';
import { parseGraph } from '../../../src/graph/parse.js';

export function graphOf(text: string): Graph {
  const sink = new DiagnosticSink();
  const g = parseGraph(text, 'test.ir', sink);
  if (g === undefined || sink.hasErrors) throw new Error(`bad test IR: ${sink.items.map((d) => d.message).join('; ')}`);
  return g;
}

/** One graph touching every op with a plain lowering. */
export const everyOpIr = `graph every(B, T) {
  %0 = input {name="tokens"} : i32[B,T]  loc(m.tfx:1:1)
  %1 = weight {name="wte"} : f32[50,16]  loc(m.tfx:2:1)
  %2 = gather %1, %0 : f32[B,T,16]  loc(m.tfx:3:1)
  %3 = arange {end=dim(T), start=dim(0)} : i32[T]  loc(m.tfx:4:1)
  %4 = weight {name="wpe"} : f32[64,16]  loc(m.tfx:5:1)
  %5 = gather %4, %3 : f32[T,16]  loc(m.tfx:6:1)
  %6 = add %2, %5 : f32[B,T,16]  loc(m.tfx:7:1)
  %7 = weight {name="g"} : f32[16]  loc(m.tfx:8:1)
  %8 = weight {name="b"} : f32[16]  loc(m.tfx:9:1)
  %9 = layernorm %6, %7, %8 {eps=1e-05} : f32[B,T,16]  loc(m.tfx:10:1)
  %10 = rmsnorm %9, %7 {eps=1e-06} : f32[B,T,16]  loc(m.tfx:11:1)
  %11 = reshape %10 {shape=dims[B,T,2,8]} : f32[B,T,2,8]  loc(m.tfx:12:1)
  %12 = permute %11 {perm=[0,2,1,3]} : f32[B,2,T,8]  loc(m.tfx:13:1)
  %13 = permute %12 {perm=[0,1,3,2]} : f32[B,2,8,T]  loc(m.tfx:14:1)
  %14 = matmul %12, %13 : f32[B,2,T,T]  loc(m.tfx:15:1)
  %15 = grid {body=(q, k) => le(k, q), shape=dims[T,T]} : bool[T,T]  loc(m.tfx:16:1)
  %16 = const {value=-inf} : f32[]  loc(m.tfx:17:1)
  %17 = where %15, %14, %16 : f32[B,2,T,T]  loc(m.tfx:17:1)
  %18 = softmax %17 {axis=3} : f32[B,2,T,T]  loc(m.tfx:18:1)
  %19 = matmul %18, %12 : f32[B,2,T,8]  loc(m.tfx:19:1)
  %20 = slice %19 {axis=3, end=dim(4), start=dim(0)} : f32[B,2,T,4]  loc(m.tfx:20:1)
  %21 = slice %19 {axis=3, end=dim(8), start=dim(4)} : f32[B,2,T,4]  loc(m.tfx:20:1)
  %22 = concat %21, %20 {axis=3} : f32[B,2,T,8]  loc(m.tfx:21:1)
  %23 = gelu %22 {approx="erf"} : f32[B,2,T,8]  loc(m.tfx:22:1)
  %24 = sum %23 {axes=[1], keepdims=false} : f32[B,T,8]  loc(m.tfx:23:1)
  %25 = max_reduce %24 {axes=[2], keepdims=true} : f32[B,T,1]  loc(m.tfx:24:1)
  %26 = mean %24 {axes=[2], keepdims=true} : f32[B,T,1]  loc(m.tfx:25:1)
  %27 = sub %25, %26 : f32[B,T,1]  loc(m.tfx:26:1)
  %28 = cast %27 {to=f16} : f16[B,T,1]  loc(m.tfx:27:1)
  %29 = mod %0, %0 : i32[B,T]  loc(m.tfx:28:1)
  output "y" = %28  loc(m.tfx:30:1)
  output "z" = %29  loc(m.tfx:31:1)
  output "h" = %11  loc(m.tfx:32:1)
}
`;
