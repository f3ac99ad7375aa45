// The tensor-core matmul (src/kernel/matmul/mma.ts) on the CUDA CPU emulator vs the float64
// interpreter: f16 and bf16 operands, M/N/K in {1, 17, 70, 129} (no multiple of the 64x64x32
// tile, the 8-element copies or the 16x8x16 mma), a folded batch, a batched B, a transposed B
// (x @ transpose(w), read as stored) and the fused_matmul epilogue (bias, gelu, residual). Inputs are rounded to the dtype before both runs,
// so the only differences are f32 accumulation and the kernel's own output rounding.
import { describe, expect, it } from 'vitest';
import { compilePlan } from '../../src/compile/plan.js';
import { cudaLimits } from '../../src/kernel/schedule/schedule.js';
import { runPlanEmulated } from '../../src/runtime-cuda/emulate.js';
import { type LauncherMode, detectNvidiaGpu } from '../../src/runtime-cuda/launcher.js';
import { bf16Bits, bf16FromBits, f16Bits, f16FromBits } from '../../src/runtime/convert.js';
import { makeTensor, type Tensor64 } from '../../src/base/tensor.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext } from '../../src/passes/pass.js';
import { pipelines } from '../../src/passes/pipeline.js';
import { bindDims, feedsFor, fixtureModel, graphOf, interpret, relError } from './helpers.js';

const modelFor = (t: 'f16' | 'bf16'): string => fixtureModel('mma-matmul', t);

const round = (t: Tensor64): Tensor64 => {
  if (t.dtype !== 'f16' && t.dtype !== 'bf16') return t;
  const r = t.dtype === 'f16' ? (x: number) => f16FromBits(f16Bits(x)) : (x: number) => bf16FromBits(bf16Bits(x));
  return makeTensor(t.dtype, t.shape, Array.from(t.data, r));
};

/** max |got - want| / max |want|. */
function scaledError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let err = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) {
    err = Math.max(err, Math.abs((got[i] ?? NaN) - (want[i] ?? NaN)));
    scale = Math.max(scale, Math.abs(want[i] ?? 0));
  }
  return got.length === want.length && Number.isFinite(err) ? err / scale : Infinity;
}

// The emulator always; the GPU too where nvidia-smi lists one (the hardware's mma then checks our
// reading of the fragment layouts, which the emulator shares).
const modes: readonly LauncherMode[] = detectNvidiaGpu() === undefined ? ['emu'] : ['emu', 'nvcc'];

const shapes: readonly (readonly [number, number, number, number])[] = [
  // B, M, K, N
  [1, 1, 1, 1],
  [1, 17, 70, 129],
  [2, 70, 129, 17],
  [1, 129, 17, 70],
];

describe('tensor-core matmul on the CUDA emulator vs the float64 interpreter', () => {
  for (const t of ['f16', 'bf16'] as const) {
    it(`${t}: plain, batched and fused (bias, gelu, residual) matmuls`, () => {
      const graph = graphOf(modelFor(t));
      const fused = runPipeline(graph, pipelines.cuda, createPassContext({ target: 'cuda' }));
      const plan = compilePlan(fused, { target: cudaLimits });
      // Every matmul took the tensor-core path: mma wrappers in each matmul kernel's source; the
      // epilogue (bias, gelu, residual) rode along in one fused_matmul.
      const matmuls = plan.kernels.filter((k) => k.name.includes('matmul'));
      expect(matmuls.map((k) => k.name).sort()).toEqual(['m_fused_matmul', 'm_matmul', 'm_matmul_1', 'm_matmul_2']);
      expect(plan.kernels.length).toBe(4);
      // x @ transpose(wt) reads wt as stored (N x K): the transposed-B mma variant.
      expect(matmuls.filter((k) => (k.source.cuda ?? '').includes(`tfc_mma_tile_${t}_bt(acc`)).length).toBe(1);
      for (const k of matmuls) expect(k.source.cuda ?? '', k.name).toMatch(new RegExp(`tfc_mma_tile_${t}(_bt)?\\(acc`));
      for (const [B, M, K, N] of shapes) {
        const preset = new Map([['B', B], ['M', M], ['K', K], ['N', N]]);
        const raw = feedsFor(graph, preset, 7 + M + K * 3 + N * 5);
        const inputs = new Map([...raw.inputs].map(([k, v]) => [k, round(v)]));
        const ref = interpret(graph, { inputs, weights: raw.weights });
        const dims = bindDims(graph, { inputs, weights: raw.weights });
        for (const mode of modes) {
          const r = runPlanEmulated(plan, dims, new Map([...inputs].map(([k, v]) => [k, v.data])), { mode });
          for (const [name, want] of ref.outputs) {
            const got = r.outputs.get(name) ?? [];
            const at = `${t} ${name} at B=${B} M=${M} K=${K} N=${N} (${mode})`;
            // f32 accumulation of exact 16-bit products, K <= 129: ~1e-6 relative, so 1e-4 holds for
            // bf16 (stored as f32, epilogue in f32) and for f16 up to the kernel's rounding of the
            // output to f16 (2^-11 = 4.9e-4 relative; the interpreter keeps float64).
            if (t === 'bf16' || name !== 'f') expect(relError(got, want), at).toBeLessThan(t === 'bf16' ? 1e-4 : 2 ** -11 + 1e-4);
            // The f16 epilogue rounds after x@w, + bias, gelu and + res: 4 roundings of values up to
            // the output's scale, 2^-11 each, relative to the largest output (not per element: near
            // zero after + res the rounding of the larger intermediates dominates).
            else expect(scaledError(got, want.data), at).toBeLessThan(4 * 2 ** -11);
          }
        }
      }
    }, 240_000);
  }
});
