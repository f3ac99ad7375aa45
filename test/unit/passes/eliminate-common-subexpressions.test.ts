import { describe, it } from 'vitest';
import { checkLines } from '../../helpers/check-lines.js';
import { eliminateCommonSubexpressions } from '../../../src/passes/eliminate-common-subexpressions.js';
import { runPass } from './helpers.js';

describe('eliminate-common-subexpressions', () => {
  it('merges identical nodes, and chains of them, into the first', () => {
    const out = runPass(
      eliminateCommonSubexpressions,
      `graph m(T) {
  %0 = input {name="x"} : f32[T]
  %1 = exp %0 : f32[T]
  %2 = exp %0 : f32[T]
  %3 = neg %1 : f32[T]
  %4 = neg %2 : f32[T]
  %5 = add %3, %4 : f32[T]
  output "y" = %5
}`,
    );
    checkLines(out, 'CHECK: %1 = exp %0\nCHECK-NEXT: %2 = neg %1\nCHECK-NEXT: %3 = add %2, %2\nCHECK-NEXT: output "y" = %3');
    checkLines(out, 'CHECK: exp\nCHECK-NOT: exp');
  });

  it('never merges inputs or weights, and keeps nodes whose attributes differ', () => {
    const out = runPass(
      eliminateCommonSubexpressions,
      `graph m(T) {
  %0 = weight {name="a"} : f32[T,T]
  %1 = weight {name="b"} : f32[T,T]
  %2 = softmax %0 {axis=0} : f32[T,T]
  %3 = softmax %0 {axis=1} : f32[T,T]
  %4 = add %2, %3 : f32[T,T]
  %5 = add %0, %1 : f32[T,T]
  output "y" = %4
  output "z" = %5
}`,
    );
    checkLines(out, 'CHECK: %0 = weight {name="a"}\nCHECK-NEXT: %1 = weight {name="b"}\nCHECK-NEXT: {axis=0}\nCHECK-NEXT: {axis=1}\nCHECK: %5 = add %0, %1');
  });

  it('merges identical consts and grids (the lambdas compare by text)', () => {
    const out = runPass(
      eliminateCommonSubexpressions,
      `graph m(T) {
  %0 = grid {body=(q, k) => le(k, q), shape=dims[T,T]} : bool[T,T]
  %1 = grid {body=(q, k) => le(k, q), shape=dims[T,T]} : bool[T,T]
  %2 = and %0, %1 : bool[T,T]
  %3 = const {value=-inf} : f32[]
  %4 = const {value=-inf} : f32[]
  %5 = max %3, %4 : f32[]
  output "y" = %2
  output "z" = %5
}`,
    );
    checkLines(out, 'CHECK: %1 = and %0, %0\nCHECK-NEXT: %2 = const {value=-inf}\nCHECK-NEXT: %3 = max %2, %2');
  });
});
