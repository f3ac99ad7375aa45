import { describe, expect, it } from 'vitest';
import { checkLines } from '../../helpers/check-lines.js';
import { type Remark, createPassContext } from '../../../src/passes/pass.js';
import { widenAttentionScores } from '../../../src/passes/widen-attention-scores.js';
import { runPass } from './helpers.js';

// Causal f16 attention as the builder leaves it unfused: scores, scale, mask where, softmax, @ v.
const attention = (dt: 'f16' | 'bf16' | 'f32'): string => `graph m(T) {
  %0 = input {name="q"} : ${dt}[2,T,16]
  %1 = input {name="k"} : ${dt}[2,T,16]
  %2 = input {name="v"} : ${dt}[2,T,16]
  %3 = permute %1 {perm=[0,2,1]} : ${dt}[2,16,T]
  %4 = matmul %0, %3 : ${dt}[2,T,T]
  %5 = const {value=4.0} : ${dt}[]
  %6 = div %4, %5 : ${dt}[2,T,T]
  %7 = grid {body=(i, j) => le(j, i), shape=dims[T,T]} : bool[T,T]
  %8 = const {value=-inf} : ${dt}[]
  %9 = where %7, %6, %8 : ${dt}[2,T,T]
  %10 = softmax %9 {axis=2} : ${dt}[2,T,T]
  %11 = matmul %10, %2 : ${dt}[2,T,16]
  output "o" = %11
}`;

describe('widen-attention-scores', () => {
  it('computes f16 scores, scale, mask and softmax in f32 and casts the probabilities back', () => {
    const remarks: Remark[] = [];
    const ctx = createPassContext({ verify: true, remark: (r) => remarks.push(r) });
    const out = runPass(widenAttentionScores, attention('f16'), ctx);
    checkLines(
      out,
      `CHECK: %3 = permute %1 {perm=[0,2,1]} : f16[2,16,T]
       CHECK-NEXT: %4 = cast %0 {to=f32} : f32[2,T,16]
       CHECK-NEXT: %5 = cast %3 {to=f32} : f32[2,16,T]
       CHECK-NEXT: %6 = matmul %4, %5 : f32[2,T,T]
       CHECK-NEXT: %7 = const {value=4.0} : f32[]
       CHECK-NEXT: %8 = div %6, %7 : f32[2,T,T]
       CHECK-NEXT: %9 = grid
       CHECK-NEXT: %10 = const {value=-inf} : f32[]
       CHECK-NEXT: %11 = where %9, %8, %10 : f32[2,T,T]
       CHECK-NEXT: %12 = softmax %11 {axis=2} : f32[2,T,T]
       CHECK-NEXT: %13 = cast %12 {to=f16} : f16[2,T,T]
       CHECK-NEXT: %14 = matmul %13, %2 : f16[2,T,16]
       CHECK-NEXT: output "o" = %14`,
    );
    expect(out).not.toContain(': f16[]'); // the f16 consts only the chain read are gone
    expect(remarks.map((r) => r.message)).toEqual([expect.stringMatching(/^f16 attention scores of the softmax at test\.ir:12:3 to :40 computed in f32 \(matmul, div, where, softmax\): stored as f16\[2,T,T\] they would overflow to inf past 65504 before the softmax$/)]);
  });

  it('widens bf16 the same way and leaves f32 alone', () => {
    checkLines(runPass(widenAttentionScores, attention('bf16')), `CHECK: matmul %4, %5 : f32[2,T,T]\nCHECK: cast %12 {to=bf16} : bf16[2,T,T]`);
    const f32 = attention('f32');
    expect(runPass(widenAttentionScores, f32)).toBe(runPass({ name: 'none', summary: '', run: (g) => g }, f32));
  });

  it('does not widen when a score has another user, and says so', () => {
    const remarks: Remark[] = [];
    const ctx = createPassContext({ verify: true, remark: (r) => remarks.push(r) });
    const text = attention('f16').replace('output "o" = %11', 'output "o" = %11\n  output "s" = %6');
    const out = runPass(widenAttentionScores, text, ctx);
    expect(out).not.toContain('f32');
    expect(remarks.map((r) => r.message)).toEqual([expect.stringMatching(/not widened to f32: div at test\.ir:8:3 to :30 has other users$/)]);
  });
});
