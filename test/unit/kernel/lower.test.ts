import { describe, expect, it } from 'vitest';
import { lowerToKernels } from '../../../src/kernel/lower/lower.js';
import { isElementwiseOp } from '../../../src/kernel/lower/scalar.js';
import { lavapipeLimits, webgpuDefaultLimits, chooseSchedule } from '../../../src/kernel/schedule/schedule.js';
import { verifyKernels, verifyKernel } from '../../../src/kernel/ir/verify.js';
import { printKernels } from '../../../src/kernel/ir/print.js';
import { opsInFamily } from '../../../src/ops/catalog.js';
import type { Kernel } from '../../../src/kernel/ir/ir.js';
import { everyOpIr, graphOf } from './helpers.js';

describe('lowerToKernels', () => {
  it('has a per-element lowering for every elementwise catalog op, and none for other ops', () => {
    const missing = opsInFamily('elementwise').map((op) => op.name).filter((n) => !isElementwiseOp(n));
    expect(missing).toEqual([]);
    expect(['softmax', 'matmul', 'grid', 'sum'].filter(isElementwiseOp)).toEqual([]);
  });

  it('lowers every op to kernels that verify, with and without subgroups', () => {
    const g = graphOf(everyOpIr);
    for (const target of [lavapipeLimits, webgpuDefaultLimits]) {
      const p = lowerToKernels(g, target);
      expect(verifyKernels(p, target)).toEqual([]);
      // reshape is a view and the -inf constant folds into `where`: no kernel for either.
      expect(p.kernels.map((k) => k.op)).not.toContain('reshape');
      expect(p.kernels.map((k) => k.op)).not.toContain('const');
      expect(p.storage.get(11)).toBe(10);
      expect(p.storage.get(16)).toBe('folded');
    }
  });

  it('counts one kernel per op for unfused attention (matmul, mask, softmax, matmul)', () => {
    const g = graphOf(everyOpIr);
    const ks = lowerToKernels(g, lavapipeLimits).kernels;
    const ops = ks.map((k) => k.op);
    // Each matmul has T rows: a prefill kernel (T > 1) and a decode-step kernel (T <= 1, K split
    // across lanes) on lavapipe, exactly one of them launched per run.
    expect(ops.filter((o) => o === 'matmul')).toHaveLength(4);
    expect(ks.filter((k) => k.op === 'matmul').map((k) => k.when?.op)).toEqual(['<=', '>', '<=', '>']);
    expect(ops.filter((o) => o === 'softmax')).toHaveLength(1);
    expect(ops).toHaveLength(25); // 30 nodes - 5 inputs/weights - 1 reshape - 1 folded const, + 2 decode matmuls
    const gpu = lowerToKernels(g, webgpuDefaultLimits).kernels.map((k) => k.op);
    expect(gpu.filter((o) => o === 'matmul')).toHaveLength(2); // no decode path without subgroups
  });

  it('names kernels k<N>_<op>, unique and valid identifiers', () => {
    const p = lowerToKernels(graphOf(everyOpIr), lavapipeLimits);
    expect(p.kernels[0]?.name).toBe('k0_gather');
    for (const k of p.kernels) expect(k.name).toMatch(/^[A-Za-z][A-Za-z0-9_]*$/);
    expect(new Set(p.kernels.map((k) => k.name)).size).toBe(p.kernels.length);
  });

  it('takes tile sizes from the schedule, not from lowering', () => {
    const g = graphOf(everyOpIr);
    const { decodeMatmul: _decode, ...s } = chooseSchedule(lavapipeLimits);
    const small = { ...s, matmul: { tileRows: 16, tileCols: 16, tileK: 8, threadRows: 2, threadCols: 2 } };
    const mm = lowerToKernels(g, lavapipeLimits, small).kernels.find((k) => k.op === 'matmul');
    expect(mm?.workgroupSize).toEqual([8, 8, 1]);
    expect(mm?.shared.map((a) => a.length)).toEqual([16 * 8, 8 * 16]);
  });

  it('prints the loop nest deterministically for --emit kernels', () => {
    const g = graphOf(everyOpIr);
    const a = printKernels(lowerToKernels(g, lavapipeLimits));
    const b = printKernels(lowerToKernels(g, lavapipeLimits));
    expect(a).toBe(b);
    expect(a).toContain('kernel k8_matmul (matmul)  loc(m.tfx:15:1)');
    expect(a).toContain('schedule: tiled_matmul: tile 16x32, k-step 4, lane broadcast (1 subgroup, A rows from lanes), 4 columns/lane, loads A x1 B x1');
  });

  it('broadcasts A rows from subgroup lanes on a CPU target, reads directly without subgroups, stages tiles on a GPU', () => {
    const g = graphOf(everyOpIr);
    const cpu = lowerToKernels(g, lavapipeLimits).kernels.find((k) => k.op === 'matmul' && k.when?.op === '>');
    expect(cpu?.workgroupSize).toEqual([8, 1, 1]);
    expect(cpu?.shared).toEqual([]);
    const noSubgroups = lowerToKernels(g, { ...lavapipeLimits, subgroupSize: 0 }).kernels.find((k) => k.op === 'matmul');
    expect(noSubgroups?.workgroupSize).toEqual([8, 8, 1]);
    expect(noSubgroups?.shared).toEqual([]);
    const gpu = lowerToKernels(g, { ...lavapipeLimits, isCpu: false }).kernels.find((k) => k.op === 'matmul');
    expect(gpu?.shared.map((x) => x.length)).toEqual([64 * 16, 16 * 64]);
  });
});

describe('verifyKernel', () => {
  const base = (): Kernel => {
    const k = lowerToKernels(graphOf(everyOpIr), lavapipeLimits).kernels.find((x) => x.op === 'softmax');
    if (k === undefined) throw new Error('no softmax kernel');
    return k;
  };

  it('rejects a store to a read-only buffer', () => {
    const k = base();
    const bad: Kernel = { ...k, body: [...k.body, { kind: 'store', slot: 0, index: { kind: 'lit', type: 'u32', value: 0 }, value: { kind: 'lit', type: 'f32', value: 0 } }] };
    expect(verifyKernel(bad, lavapipeLimits).join('\n')).toMatch(/stores to read-only buffer x/);
  });

  it('rejects a barrier under a thread-dependent condition', () => {
    const k = base();
    const cond = { kind: 'binary', op: 'lt', a: { kind: 'builtin', id: 'local_id', axis: 0 }, b: { kind: 'lit', type: 'u32', value: 3 }, type: 'bool' } as const;
    const bad: Kernel = { ...k, body: [...k.body, { kind: 'if', cond, then: [{ kind: 'barrier' }], else: [] }] };
    expect(verifyKernel(bad, lavapipeLimits).join('\n')).toMatch(/barrier in non-uniform control flow/);
  });

  it('rejects workgroup memory over the target limit and undeclared names', () => {
    const k = base();
    const bad: Kernel = {
      ...k,
      shared: [...k.shared, { name: 'huge', type: 'f32', length: 100000 }],
      body: [...k.body, { kind: 'assign', name: 'ghost', value: { kind: 'lit', type: 'f32', value: 1 } }],
    };
    const errors = verifyKernel(bad, lavapipeLimits).join('\n');
    expect(errors).toMatch(/workgroup memory \d+ B exceeds/);
    expect(errors).toMatch(/assigns ghost, which is not a declared var/);
  });
});
