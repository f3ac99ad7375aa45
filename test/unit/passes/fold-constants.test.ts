import { describe, expect, it } from 'vitest';
import { checkLines } from '../../helpers/check-lines.js';
import { foldConstants } from '../../../src/passes/fold-constants.js';
import { createPassContext } from '../../../src/passes/pass.js';
import { runPass } from './helpers.js';

describe('fold-constants', () => {
  it('folds arithmetic on scalar consts and removes the consts it consumed', () => {
    const ctx = createPassContext({ verify: true });
    const out = runPass(
      foldConstants,
      `graph m(T) {
  %0 = input {name="x"} : f32[T]
  %1 = const {value=2.0} : f32[]
  %2 = const {value=3.0} : f32[]
  %3 = mul %1, %2 : f32[]
  %4 = neg %3 : f32[]
  %5 = add %0, %4 : f32[T]
  output "y" = %5
}`,
      ctx,
    );
    checkLines(
      out,
      `CHECK: %0 = input
       CHECK-NEXT: %1 = const {value=-6.0} : f32[]
       CHECK-NEXT: %2 = add %0, %1 : f32[T]
       CHECK-NEXT: output "y" = %2`,
    );
    checkLines(out, 'CHECK-NOT: mul');
    expect(ctx.stats.ruleHits.get('fold-constants/fold-scalar-op')).toBe(2);
  });

  it('where(const, a, b) keeps the chosen side when it has the where\'s type; a broadcast one stays', () => {
    const ctx = createPassContext({ verify: true });
    const out = runPass(
      foldConstants,
      `graph m(T) {
  %0 = input {name="a"} : bool[T,T]
  %1 = input {name="b"} : bool[T,T]
  %2 = const {value=1.0} : bool[]
  %3 = where %2, %0, %1 : bool[T,T]
  %4 = const {value=0.0} : bool[]
  %5 = where %4, %0, %1 : bool[T,T]
  %6 = input {name="c"} : bool[T]
  %7 = where %2, %6, %1 : bool[T,T]
  output "p" = %3
  output "q" = %5
  output "r" = %7
}`,
      ctx,
    );
    checkLines(
      out,
      `CHECK: where %{{[0-9]+}}, %{{[0-9]+}}, %{{[0-9]+}} : bool[T,T]
       CHECK: output "p" = %0
       CHECK-NEXT: output "q" = %1
       CHECK-NEXT: output "r" = %`,
    );
    expect(ctx.stats.ruleHits.get('fold-constants/where-const-cond')).toBe(2);
  });

  it('uses the op semantics of the dtype (i32 division truncates, comparisons give bool)', () => {
    const out = runPass(
      foldConstants,
      `graph m() {
  %0 = const {value=7.0} : i32[]
  %1 = const {value=-2.0} : i32[]
  %2 = div %0, %1 : i32[]
  %3 = lt %1, %0 : bool[]
  output "q" = %2
  output "c" = %3
}`,
    );
    checkLines(out, 'CHECK: %0 = const {value=-3.0} : i32[]\nCHECK-NEXT: %1 = const {value=1.0} : bool[]');
  });

  it('removes x*1, 1*x, x+0, x-0 and x/1 when the type is unchanged', () => {
    const out = runPass(
      foldConstants,
      `graph m(T) {
  %x = input {name="x"} : f32[T]
  %one = const {value=1.0} : f32[]
  %zero = const {value=0.0} : f32[]
  %a = mul %x, %one : f32[T]
  %b = mul %one, %a : f32[T]
  %c = add %zero, %b : f32[T]
  %d = sub %c, %zero : f32[T]
  %e = div %d, %one : f32[T]
  %f = exp %e : f32[T]
  output "y" = %f
}`,
    );
    checkLines(out, 'CHECK: %0 = input\nCHECK-NEXT: %1 = exp %0 : f32[T]\nCHECK-NEXT: output "y" = %1');
    checkLines(out, 'CHECK-NOT: const');
  });

  it('keeps x*1 when it broadcasts (the result type differs from x) and 0-x', () => {
    const text = `graph m(T) {
  %0 = const {value=3.0} : f32[]
  %1 = input {name="ones"} : f32[T]
  %2 = mul %0, %1 : f32[T]
  %3 = const {value=0.0} : f32[]
  %4 = input {name="x"} : f32[T]
  %5 = sub %3, %4 : f32[T]
  output "y" = %2
  output "z" = %5
}`;
    const out = runPass(foldConstants, text);
    checkLines(out, 'CHECK: mul %0, %1 : f32[T]\nCHECK: sub %3, %4 : f32[T]');
  });

  it('does not touch a graph with nothing to fold (returns the same object)', () => {
    const ctx = createPassContext({ verify: true });
    const out = runPass(foldConstants, 'graph m(T) {\n  %0 = input {name="x"} : f32[T]\n  %1 = exp %0 : f32[T]\n  output "y" = %1\n}', ctx);
    expect(out).toContain('%1 = exp %0');
    expect(ctx.stats.ruleHits.size).toBe(0);
  });
});
