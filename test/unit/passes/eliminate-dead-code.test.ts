import { describe, it } from 'vitest';
import { checkLines } from '../../helpers/check-lines.js';
import { eliminateDeadCode } from '../../../src/passes/eliminate-dead-code.js';
import { runPass } from './helpers.js';

describe('eliminate-dead-code', () => {
  it('drops nodes no output depends on, keeping unused inputs and weights', () => {
    const out = runPass(
      eliminateDeadCode,
      `graph m(T) {
  %0 = input {name="x"} : f32[T]
  %1 = weight {name="unused"} : f32[T]
  %2 = exp %1 : f32[T]
  %3 = log %2 : f32[T]
  %4 = input {name="unused_in"} : f32[T]
  %5 = neg %0 : f32[T]
  output "y" = %5
}`,
    );
    checkLines(
      out,
      `CHECK: %0 = input {name="x"}
       CHECK-NEXT: %1 = weight {name="unused"}
       CHECK-NEXT: %2 = input {name="unused_in"}
       CHECK-NEXT: %3 = neg %0 : f32[T]
       CHECK-NEXT: output "y" = %3`,
    );
    // The dead chain is gone from the whole output (CHECK-NOTs alone scan every line; after the
    // `output` match above they would only have scanned the closing brace).
    checkLines(out, 'CHECK-NOT: exp\nCHECK-NOT: log');
  });

  it('keeps everything an output reaches', () => {
    const out = runPass(eliminateDeadCode, 'graph m(T) {\n  %0 = input {name="x"} : f32[T]\n  %1 = exp %0 : f32[T]\n  %2 = log %1 : f32[T]\n  output "y" = %2\n}');
    checkLines(out, 'CHECK: %1 = exp %0\nCHECK-NEXT: %2 = log %1');
  });
});
