import { describe, expect, it } from 'vitest';
import { NameScope, sanitizeIdentifier } from '../../../src/base/names.js';
import { wgslReserved } from '../../../codegen/common/names.js';
import { formatF32 } from '../../../codegen/common/float.js';

describe('name sanitizer', () => {
  it('bans WGSL reserved words with a _1 suffix', () => {
    const s = new NameScope(wgslReserved);
    expect(s.claim('var')).toBe('var_1');
    expect(s.claim('fn')).toBe('fn_1');
    expect(s.claim('max')).toBe('max_1');
  });

  it('turns hostile names into stable identifiers', () => {
    expect(sanitizeIdentifier('*/ evil')).toBe('evil');
    expect(sanitizeIdentifier('a"b\'c')).toBe('a_b_c');
    expect(sanitizeIdentifier('héllo wörld')).toBe('hello_world');
    expect(sanitizeIdentifier('日本')).toBe('v');
    expect(sanitizeIdentifier('3d')).toBe('n3d');
    expect(sanitizeIdentifier('__x__')).toBe('x');
  });

  it('suffixes clashes in claim order', () => {
    const s = new NameScope(wgslReserved);
    expect(['x', 'x', 'x_1', 'x!', '*/', '*/'].map((n) => s.claim(n))).toEqual(['x', 'x_1', 'x_1_1', 'x_2', 'v', 'v_1']);
  });
});

describe('formatF32', () => {
  it('prints the shortest text that round-trips the f32 value', () => {
    expect(formatF32(1e-5)).toBe('0.00001');
    expect(formatF32(0.1)).toBe('0.1');
    expect(formatF32(2)).toBe('2.0');
    expect(formatF32(-0)).toBe('-0.0');
    expect(formatF32(3.4028234663852886e38)).toBe('3.4028235e+38');
    for (const x of [Math.PI, 1 / 3, 1e-30, 0.044715, 16777217, -123.456]) {
      expect(Math.fround(Number(formatF32(x)))).toBe(Math.fround(x));
    }
  });
});
