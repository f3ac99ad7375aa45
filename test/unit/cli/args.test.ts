import { describe, expect, it } from 'vitest';
import { UsageError, parseDebug, parseSetOptions } from '../../../src/cli/args.js';

describe('parseSetOptions', () => {
  it('reads comma lists and repeated flags in order', () => {
    expect([...parseSetOptions(['layers=2,d=64', 'T=1024', 'eps=1e-5', 'x=-0.5'])]).toEqual([
      ['layers', 2],
      ['d', 64],
      ['T', 1024],
      ['eps', 1e-5],
      ['x', -0.5],
    ]);
  });

  it('accepts the same value twice', () => {
    expect([...parseSetOptions(['d=64', 'd=64'])]).toEqual([['d', 64]]);
  });

  it.each(['layers', 'd=', '=2', 'd=1,,e=2', '2d=1', 'd=0x10', 'd=1e999', 'd=1,d=2', 'd=abc'])('rejects %s as a usage error', (s) => {
    expect(() => parseSetOptions([s])).toThrow(UsageError);
  });
});

describe('parseDebug', () => {
  it('takes the flag over the environment', () => {
    expect(parseDebug(undefined, undefined)).toBe(0);
    expect(parseDebug(undefined, '3')).toBe(3);
    expect(parseDebug('1', '3')).toBe(1);
  });

  it('rejects levels outside 0..4', () => {
    expect(() => parseDebug('5', undefined)).toThrow(/--debug/);
    expect(() => parseDebug(undefined, 'yes')).toThrow(/TFC_DEBUG/);
  });
});
