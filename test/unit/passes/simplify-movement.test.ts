import { describe, expect, it } from 'vitest';
import { checkLines } from '../../helpers/check-lines.js';
import { createPassContext } from '../../../src/passes/pass.js';
import { simplifyMovement } from '../../../src/passes/simplify-movement.js';
import { runPass } from './helpers.js';

describe('simplify-movement', () => {
  it('composes permute of permute into one permute', () => {
    const ctx = createPassContext({ verify: true });
    const out = runPass(
      simplifyMovement,
      `graph m(B, T) {
  %0 = input {name="x"} : f32[B,T,4,16]
  %1 = permute %0 {perm=[0,2,1,3]} : f32[B,4,T,16]
  %2 = permute %1 {perm=[0,1,3,2]} : f32[B,4,16,T]
  output "y" = %2
}`,
      ctx,
    );
    // result axis i is input axis p[q[i]]: p=[0,2,1,3], q=[0,1,3,2] -> [0,2,3,1]
    checkLines(out, 'CHECK: %1 = permute %0 {perm=[0,2,3,1]} : f32[B,4,16,T]\nCHECK-NEXT: output "y" = %1');
    checkLines(out, 'CHECK: permute\nCHECK-NOT: permute');
    expect(ctx.stats.ruleHits.get('simplify-movement/compose-permutes')).toBe(1);
  });

  it('removes a permute pair that cancels and an identity permute', () => {
    const out = runPass(
      simplifyMovement,
      `graph m(B, T) {
  %0 = input {name="x"} : f32[B,T,4]
  %1 = permute %0 {perm=[1,0,2]} : f32[T,B,4]
  %2 = permute %1 {perm=[1,0,2]} : f32[B,T,4]
  %3 = permute %2 {perm=[0,1,2]} : f32[B,T,4]
  %4 = exp %3 : f32[B,T,4]
  output "y" = %4
}`,
    );
    checkLines(out, 'CHECK: %0 = input\nCHECK-NEXT: %1 = exp %0 : f32[B,T,4]');
    checkLines(out, 'CHECK-NOT: permute');
  });

  it('merges reshape of reshape and drops a reshape back to the same shape', () => {
    const out = runPass(
      simplifyMovement,
      `graph m(B, T) {
  %0 = input {name="x"} : f32[B,T,64]
  %1 = reshape %0 {shape=dims[B,T,4,16]} : f32[B,T,4,16]
  %2 = reshape %1 {shape=dims[B,4*T,16]} : f32[B,4*T,16]
  %3 = reshape %2 {shape=dims[B,T,64]} : f32[B,T,64]
  %4 = exp %2 : f32[B,4*T,16]
  output "y" = %3
  output "z" = %4
}`,
    );
    checkLines(
      out,
      `CHECK: %1 = reshape %0 {shape=dims[B,4*T,16]} : f32[B,4*T,16]
       CHECK-NEXT: %2 = exp %1
       CHECK-NEXT: output "y" = %0
       CHECK-NEXT: output "z" = %2`,
    );
    checkLines(out, 'CHECK: reshape\nCHECK-NOT: reshape');
  });

  it('keeps an inner permute that has another use', () => {
    const out = runPass(
      simplifyMovement,
      `graph m(B, T) {
  %0 = input {name="x"} : f32[B,T]
  %1 = permute %0 {perm=[1,0]} : f32[T,B]
  %2 = permute %1 {perm=[1,0]} : f32[B,T]
  %3 = exp %1 : f32[T,B]
  output "y" = %2
  output "z" = %3
}`,
    );
    checkLines(out, 'CHECK: %1 = permute %0 {perm=[1,0]}\nCHECK-NEXT: %2 = exp %1\nCHECK: output "y" = %0\nCHECK-NEXT: output "z" = %2');
  });
});
