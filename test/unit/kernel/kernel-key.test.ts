// kernelKey (src/kernel/ir/kernel-key.ts): the plan's kernel sharing by structure. Checked against the
// criterion it replaced (equal headerless WGSL, grid and workgroup size) on every kernel pair of
// two example models, and field by field.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { printWgsl } from '../../../codegen/wgsl/print.js';
import { lowerModel } from '../../../src/compile/kernels.js';
import { compileModel } from '../../../src/compile/model.js';
import type { Kernel } from '../../../src/kernel/ir/ir.js';
import { KernelsByKey, canonical, kernelKey, sameStructure } from '../../../src/kernel/ir/kernel-key.js';
import { lavapipeLimits, webgpuDefaultLimits } from '../../../src/kernel/schedule/schedule.js';

const kernelsOf = (file: string, set: Record<string, number>, limits = webgpuDefaultLimits): readonly Kernel[] =>
  lowerModel(compileModel({ file, text: readFileSync(file, 'utf8') }, { overrides: new Map(Object.entries(set)) }), { limits }).program.kernels;

describe('kernelKey', () => {
  it.each([
    ['examples/gpt2.tfx', { vocab: 64, ctx: 32, d: 32, heads: 2, layers: 2 }, webgpuDefaultLimits],
    ['examples/llama.tfx', { vocab: 64, d: 32, heads: 4, kv_heads: 2, layers: 2, ffn: 48 }, lavapipeLimits],
  ] as const)('shares exactly the kernels whose printed WGSL, grid and workgroup agree (%s)', (file, set, limits) => {
    const ks = kernelsOf(file, set, limits);
    const printed = ks.map((k) => `${printWgsl(k, { header: false })}\n${JSON.stringify(k.grid)}\n${k.workgroupSize.join(',')}`);
    const keys = ks.map(kernelKey);
    let shared = 0;
    for (let i = 0; i < ks.length; i++)
      for (let j = i + 1; j < ks.length; j++) {
        expect(keys[i] === keys[j], `${ks[i]?.name} vs ${ks[j]?.name}`).toBe(printed[i] === printed[j]);
        if (keys[i] === keys[j]) shared++;
      }
    // Two layers: the second layer's kernels repeat the first's, so pairs must be shared.
    expect(shared).toBeGreaterThan(0);
  });

  it('ignores what only the header or the launch holds, and sees the body, roles, grid and workgroup', () => {
    const k = kernelsOf('examples/gpt2.tfx', { vocab: 64, ctx: 32, d: 32, heads: 2, layers: 1 })[0];
    if (k === undefined) throw new Error('no kernel');
    const key = kernelKey(k);
    expect(kernelKey({ ...k, name: 'other', locs: ['x.tfx:1:1'], op: 'other', bindings: k.bindings.map((b) => b + 100), when: { size: { kind: 'dim', name: 'T' }, op: '>', value: 1 } })).toBe(key);
    expect(kernelKey({ ...k, workgroupSize: [k.workgroupSize[0] * 2, k.workgroupSize[1], k.workgroupSize[2]] })).not.toBe(key);
    expect(kernelKey({ ...k, grid: [{ kind: 'const', value: 7 }, k.grid[1], k.grid[2]] })).not.toBe(key);
    expect(kernelKey({ ...k, body: k.body.slice(1) })).not.toBe(key);
    const [b0, ...rest] = k.buffers;
    if (b0 === undefined) throw new Error('no buffer');
    expect(kernelKey({ ...k, buffers: [{ ...b0, role: `${b0.role}_x` }, ...rest] })).not.toBe(key);
  });

  it('spells numbers exactly and sorts keys', () => {
    expect(canonical({ b: 1, a: [-0, 0, NaN, Infinity, -Infinity, null], c: undefined })).toBe('{"a":[-0,0,NaN,Infinity,-Infinity,null],"b":1}');
    expect(canonical({ a: 1, b: 'x' })).toBe(canonical({ b: 'x', a: 1 }));
    expect(canonical({ v: 0.1 })).not.toBe(canonical({ v: 0.1 + Number.EPSILON }));
  });

  it.each([
    ['examples/gpt2.tfx', { vocab: 64, ctx: 32, d: 32, heads: 2, layers: 2 }, webgpuDefaultLimits],
    ['examples/llama.tfx', { vocab: 64, d: 32, heads: 4, kv_heads: 2, layers: 2, ffn: 48 }, lavapipeLimits],
  ] as const)('KernelsByKey (hash + sameStructure, what compilePlan uses) groups exactly as equal kernelKey strings (%s)', (file, set, limits) => {
    const ks = kernelsOf(file, set, limits);
    const keys = ks.map(kernelKey);
    const table = new KernelsByKey<number>();
    const group: number[] = [];
    ks.forEach((k, i) => group.push(table.findOrAdd(k, () => i)));
    for (let i = 0; i < ks.length; i++) expect(keys[group[i] ?? -1], ks[i]?.name).toBe(keys[i]);
    expect(new Set(group).size).toBe(new Set(keys).size);
    expect(new Set(group).size).toBeLessThan(ks.length);
  });

  it('sameStructure is canonical equality: key order and undefined properties do not count, -0, NaN and types do', () => {
    const cases: [unknown, unknown][] = [
      [{ a: 1, b: [1, 'x'] }, { b: [1, 'x'], a: 1 }],
      [{ a: 1, c: undefined }, { a: 1 }],
      [{ a: 0 }, { a: -0 }],
      [{ a: NaN }, { a: NaN }],
      [{ a: Infinity }, { a: -Infinity }],
      [{ a: '1' }, { a: 1 }],
      [{ a: null }, { a: {} }],
      [[], {}],
      [[1, 2], [1, 2, 3]],
      [{ a: 1 }, { a: 1, b: 2 }],
      [{ a: 1, b: 2 }, { a: 1 }],
      [{ a: true }, { a: 'true' }],
    ];
    for (const [a, b] of cases) expect(sameStructure(a, b), `${canonical(a)} vs ${canonical(b)}`).toBe(canonical(a) === canonical(b));
  });
});
