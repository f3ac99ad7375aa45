// The checkLines helper itself: each directive passes and fails where FileCheck would.
import { describe, expect, it } from 'vitest';
import { checkLines } from '../../helpers/check-lines.js';

const out = 'graph m(T) {\n  %0 = input {name="x"} : f32[T]\n  %1 = exp %0 : f32[T]\n  output "y" = %1\n}\n';

describe('checkLines', () => {
  it('matches CHECK in order, CHECK-NEXT on the next line, and regexes in {{ }}', () => {
    checkLines(out, '// CHECK: graph m\n// CHECK: %{{[0-9]+}} = exp\n// CHECK-NEXT: output "y"');
  });
  it('treats runs of spaces in a pattern as any run of spaces', () => {
    checkLines(out, 'CHECK: %1 = exp   %0 : f32[T]');
  });
  it('fails on a missing CHECK, a wrong CHECK-NEXT, or order', () => {
    expect(() => checkLines(out, 'CHECK: softmax')).toThrow(/CHECK \(checks line 1\) 'softmax' not found/);
    expect(() => checkLines(out, 'CHECK: input\nCHECK-NEXT: output')).toThrow(/CHECK-NEXT .* does not match output line 3/);
    expect(() => checkLines(out, 'CHECK: exp\nCHECK: input')).toThrow(/'input' not found from output line 4/);
  });
  it('fails CHECK-NOT only between the surrounding matches', () => {
    checkLines(out, 'CHECK: input\nCHECK-NOT: input\nCHECK: output');
    expect(() => checkLines(out, 'CHECK: graph\nCHECK-NOT: exp\nCHECK: output')).toThrow(/CHECK-NOT .* 'exp' matched output line 3/);
    expect(() => checkLines(out, 'CHECK: input\nCHECK-NOT: }')).toThrow(/matched output line 5/);
  });
  it('scans the whole output with CHECK-NOT alone, and refuses a CHECK-NOT that covers no line', () => {
    expect(() => checkLines(out, 'CHECK-NOT: exp')).toThrow(/'exp' matched output line 3/);
    checkLines(out, 'CHECK-NOT: softmax');
    // Before a CHECK-NEXT the range is empty; after the last line (the trailing '' here) too.
    expect(() => checkLines(out, 'CHECK: input\nCHECK-NOT: exp\nCHECK-NEXT: exp')).toThrow(/scans no output line/);
    expect(() => checkLines(out, 'CHECK: {{^$}}\nCHECK-NOT: exp')).toThrow(/scans no output line/);
  });
  it('refuses checks without directives', () => {
    expect(() => checkLines(out, 'no directives here')).toThrow(/no CHECK directives/);
  });
});
