// Which matmuls lower to the tensor-core kernel (kernel/matmul/mma.ts), what its kernel IR holds, and
// that only CUDA can print it: WebGPU schedules never choose it and the WGSL printer refuses it.
import { describe, expect, it } from 'vitest';
import { printWgsl } from '../../../codegen/wgsl/print.js';
import type { Kernel, Stmt } from '../../../src/kernel/ir/ir.js';
import { lowerToKernels } from '../../../src/kernel/lower/lower.js';
import { printKernel } from '../../../src/kernel/ir/print.js';
import { cudaLimits, lavapipeLimits, webgpuDefaultLimits } from '../../../src/kernel/schedule/schedule.js';
import { verifyKernel } from '../../../src/kernel/ir/verify.js';
import { graphOf } from './helpers.js';

const matmulIr = (t: string): string => `graph mm(M, K, N) {
  %0 = input {name="x"} : ${t}[M,K]  loc(m.tfx:1:1)
  %1 = input {name="w"} : ${t}[K,N]  loc(m.tfx:2:1)
  %2 = matmul %0, %1 : ${t}[M,N]  loc(m.tfx:3:1)
  output "y" = %2  loc(m.tfx:4:1)
}
`;

const only = (ks: readonly Kernel[]): Kernel => {
  expect(ks.length).toBe(1);
  const [k] = ks;
  if (k === undefined) throw new Error('no kernel');
  return k;
};

describe('tensor-core matmul lowering', () => {
  for (const t of ['f16', 'bf16'] as const) {
    it(`lowers a ${t} matmul on cudaLimits to warps of mma with two async-copy stages`, () => {
      const k = only(lowerToKernels(graphOf(matmulIr(t)), cudaLimits).kernels);
      expect(k.schedule).toEqual({ kind: 'mma_matmul', tileRows: 64, tileCols: 64, tileK: 32, warpRows: 2, warpCols: 2, stages: 2, input: t });
      expect(k.workgroupSize).toEqual([128, 1, 1]);
      // 2 stages x 64 rows x (32 + 8) halves for A and 2 x 32 x (64 + 8) for B, as u32 pairs.
      expect(k.shared.map((a) => [a.type, a.length])).toEqual([['u32', 2560], ['u32', 2304]]);
      expect(verifyKernel(k, cudaLimits)).toEqual([]);
      const text = printKernel(k);
      // Per K tile: 32/16 k-steps x (2 x 4) warp tiles = 16 mma.
      expect(text.match(new RegExp(`mma\\.${t} `, 'g'))?.length).toBe(16);
      expect(text).toContain(`async_copy.${t} `);
      expect(text).toContain('async_wait 1');
      expect(() => printWgsl(k)).toThrow(/internal: kernel .* matrix intrinsics/);
    });
  }

  it('keeps f32 matmuls and every WebGPU target on the scalar tiled path', () => {
    expect(only(lowerToKernels(graphOf(matmulIr('f32')), cudaLimits).kernels).schedule.kind).toBe('tiled_matmul');
    for (const target of [lavapipeLimits, webgpuDefaultLimits]) {
      // lavapipe adds a decode-step kernel where M can be 1: tiled too.
      for (const k of lowerToKernels(graphOf(matmulIr('f16')), target).kernels) expect(k.schedule.kind, target.name).toBe('tiled_matmul');
    }
  });

  it('verifier rejects an mma under a thread-dependent branch', () => {
    const k = only(lowerToKernels(graphOf(matmulIr('f16')), cudaLimits).kernels);
    const hide = (stmts: readonly Stmt[]): Stmt[] =>
      stmts.map((s): Stmt => {
        if (s.kind === 'for') return { ...s, body: hide(s.body) };
        if (s.kind === 'mma') return { kind: 'if', cond: { kind: 'binary', op: 'lt', a: { kind: 'builtin', id: 'local_index', axis: 0 }, b: { kind: 'lit', type: 'u32', value: 64 }, type: 'bool' }, then: [s], else: [] };
        return s;
      });
    expect(verifyKernel({ ...k, body: hide(k.body) }, cudaLimits)).toContain(`${k.name}: mma in non-uniform control flow`);
  });
});
