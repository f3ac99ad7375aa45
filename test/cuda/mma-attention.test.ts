// The tensor-core attention prefill kernel (src/kernel/attention/mma.ts) on the CUDA CPU
// emulator vs the float64 interpreter: f16 and bf16 q/k/v; causal, sliding window, soft-cap score
// mod (an IR graph), GQA (4 query heads on 2 KV heads), a fully masked row with its LSE, and full cross-attention
// S != T at dk = dv = 128 (32-key tiles); T in {1 (split-K decode, scalar), 17, 70}.
// The reference is the same model in f32 on the inputs rounded to the dtype, so it sees exactly
// the kernel's operands; the kernel rounds P to the dtype before P V (FlashAttention-2 does too)
// and f16 outputs to f16. |P error| <= 2^-11 (f16) / 2^-8 (bf16) relative per probability, so
// |O error| <= that times max|v| plus the output rounding: tolerance 2^-10 (f16) and 2^-8 (bf16)
// of max|o| (the matmul test's scaledError; per-element relative error would divide by outputs
// that cancel to near zero).
import { describe, expect, it } from 'vitest';
import { DiagnosticSink } from '../../src/diag/diagnostic.js';
import type { Graph } from '../../src/graph/ir.js';
import { parseGraph } from '../../src/graph/parse.js';
import { compilePlan } from '../../src/compile/plan.js';
import type { Plan } from '../../src/kernel/plan/plan.js';
import { lowerToKernels } from '../../src/kernel/lower/lower.js';
import { chooseSchedule, cudaLimits, lavapipeLimits } from '../../src/kernel/schedule/schedule.js';
import { runPlanEmulated } from '../../src/runtime-cuda/emulate.js';
import { type LauncherMode, detectNvidiaGpu } from '../../src/runtime-cuda/launcher.js';
import { bf16Bits, bf16FromBits, f16Bits, f16FromBits } from '../../src/runtime/convert.js';
import { makeTensor, type Tensor64 } from '../../src/base/tensor.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext } from '../../src/passes/pass.js';
import { pipelines } from '../../src/passes/pipeline.js';
import { bindDims, feedsFor, fixtureModel, graphOf, interpret } from './helpers.js';

const modelFor = (t: string): string => fixtureModel('mma-attention', t);

const rounder = (t: 'f16' | 'bf16'): ((x: number) => number) => (t === 'f16' ? (x) => f16FromBits(f16Bits(x)) : (x) => bf16FromBits(bf16Bits(x)));

/** max |got - want| / max |want| over the finite entries; Infinity when a finite entry is not matched. */
// Bounds of the error relative to max|o| (~ max|v| here): P rounded to nearest even (2^-11 f16,
// 2^-8 bf16) plus, for f16, the output's own rounding (2^-11); measured 4.4e-4 (f16), 2.0e-3 (bf16).
const tolerance = { f16: 2 ** -10, bf16: 2 ** -8 } as const;

function scaledError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let err = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) {
    const w = want[i] ?? NaN;
    const g = got[i] ?? NaN;
    if (w === -Infinity && g === -Infinity) continue;
    err = Math.max(err, Math.abs(g - w));
    scale = Math.max(scale, Math.abs(w));
  }
  return got.length === want.length && Number.isFinite(err) ? err / Math.max(scale, 1e-30) : Infinity;
}

// Soft-capping as a score mod, 2 tanh(s / 2) at scale 0.25, causal: written as the fused node (in
// .tfx, tanh of an f16 score is computed in f32, so fuse-attention leaves that graph unfused).
const softcapIr = (t: string): string => `graph attn(B, T) {
  %0 = input {name="q"} : ${t}[B,2,T,64]
  %1 = input {name="k"} : ${t}[B,2,T,64]
  %2 = input {name="v"} : ${t}[B,2,T,64]
  %3 = fused_attention %0, %1, %2 {mask=(b, h, q, k) => le(k, q), scale=0.25, score=(b, h, q, k) => mul(2.0, tanh(score()))} : ${t}[B,2,T,64]
  output "capped" = %3
}`;

function parsed(text: string): Graph {
  const sink = new DiagnosticSink();
  const g = parseGraph(text, 'softcap.ir', sink);
  expect(sink.items.map((d) => d.message)).toEqual([]);
  if (g === undefined) throw new Error('no graph');
  return g;
}

interface Graphs {
  readonly t: 'f16' | 'bf16';
  readonly graph: Graph; // what the plan was compiled from (source graph: inputs, dims)
  readonly ref: Graph; // the same in f32: the reference
}
const modelGraphs = (t: 'f16' | 'bf16'): Graphs => ({ t, graph: graphOf(modelFor(t)), ref: graphOf(modelFor('f32')) });
const softcapGraphs = (t: 'f16' | 'bf16'): Graphs => ({ t, graph: parsed(softcapIr(t)), ref: parsed(softcapIr('f32')) });

function compile(gs: Graphs, fuse: boolean): Plan {
  const g = fuse ? runPipeline(gs.graph, pipelines.cuda, createPassContext({ verify: true, target: 'cuda' })) : gs.graph;
  return compilePlan(g, { target: cudaLimits });
}

// The emulator always; the GPU too where nvidia-smi lists one (the hardware's mma, cp.async and
// shuffles then check what the emulator shares with our wrappers).
const modes: readonly LauncherMode[] = detectNvidiaGpu() === undefined ? ['emu'] : ['emu', 'nvcc'];

/** Largest scaled error per output and mode, for B = 1 at T (S = T + 9). */
function errors(plan: Plan, gs: Graphs, T: number, only?: LauncherMode): Map<string, number> {
  const { t, graph, ref: ref32 } = gs;
  const dims = new Map([['B', 1], ['T', T], ['S', T + 9]]);
  const raw = feedsFor(graph, dims, 3 + T);
  const r = rounder(t);
  const inputs = new Map([...raw.inputs].map(([k, x]): [string, Tensor64] => [k, makeTensor(t, x.shape, Array.from(x.data, r))]));
  const inputs32 = new Map([...inputs].map(([k, x]): [string, Tensor64] => [k, makeTensor('f32', x.shape, Array.from(x.data))]));
  const ref = interpret(ref32, { inputs: inputs32, weights: new Map() });
  const out = new Map<string, number>();
  for (const mode of only === undefined ? modes : [only]) {
    const got = runPlanEmulated(plan, bindDims(graph, { inputs, weights: new Map() }), new Map([...inputs].map(([k, x]) => [k, x.data])), { mode });
    for (const [name, want] of ref.outputs) {
      const g = got.outputs.get(name) ?? [];
      if (name === 'lse') {
        // Row 2 of `masked` sees no key: LSE exactly -inf.
        for (let h = 0; h < 2; h++) if (T > 2) expect(g[h * T + 2], `lse row 2 head ${h} at T=${T} (${mode})`).toBe(-Infinity);
      }
      if (name === 'masked' && T > 2) for (let j = 0; j < 64; j++) expect(g[2 * 64 + j], `masked row 2 at T=${T} (${mode})`).toBe(0);
      out.set(`${name} (${mode})`, scaledError(g, want.data));
    }
  }
  return out;
}

describe('tensor-core attention prefill on the CUDA emulator vs the float64 interpreter', () => {
  for (const t of ['f16', 'bf16'] as const) {
    it(`${t}: causal, window, GQA, masked row + LSE, cross-attention dk=dv=128`, () => {
      const plan = compile(modelGraphs(t), true);
      const attn = plan.kernels.filter((k) => k.name.includes('fused_attention') && !k.name.includes('split') && !k.name.includes('combine'));
      // Every prefill kernel took the tensor-core path (P V from registers); decode keeps split-K.
      expect(attn.length).toBe(5);
      for (const k of attn) expect(k.source.cuda ?? '', k.name).toContain(`tfc_mma_regs_${t}(`);
      expect(plan.kernels.filter((k) => k.name.includes('fused_attention_split')).length).toBe(5);
      const tol = tolerance[t];
      for (const T of [1, 17, 70]) {
        for (const [name, e] of errors(plan, modelGraphs(t), T)) expect(e, `${t} ${name} at T=${T}`).toBeLessThan(tol);
      }
    }, 600_000);

    it(`${t}: soft-cap score mod`, () => {
      const plan = compile(softcapGraphs(t), false);
      expect(plan.kernels.filter((k) => (k.source.cuda ?? '').includes(`tfc_mma_regs_${t}(`)).length).toBe(1);
      for (const T of [17, 70]) {
        for (const [name, e] of errors(plan, softcapGraphs(t), T)) expect(e, `${t} ${name} at T=${T}`).toBeLessThan(tolerance[t]);
      }
    }, 600_000);
  }

  it('fails when a row max misses one quad partner (lane ^ 2 read as the lane itself)', () => {
    const plan = compile(modelGraphs('f16'), true);
    const mutated: Plan = {
      ...plan,
      kernels: plan.kernels.map((k) => {
        const src = k.source.cuda ?? '';
        if (!src.includes('tfc_mma_regs_f16(')) return k;
        // lane_x2 = lane + 2 - 4 * ((lane / 2) % 2) -> lane + 0: the quad max then covers 2 lanes.
        const next = src.replace(/(lane_x2 = )\(?lane \+ 2u\)? - /, '$1lane + 0u - 0u * ');
        expect(next, k.name).not.toBe(src);
        return { ...k, source: { ...k.source, cuda: next } };
      }),
    };
    const e = errors(mutated, modelGraphs('f16'), 17, 'emu');
    expect(Math.max(...e.values())).toBeGreaterThan(tolerance.f16);
  }, 600_000);

  // Which nodes take it (no emulator): f16/bf16 with dk, dv in {64, 128} on a tensor-core target;
  // other widths, f32, mixed dtypes, RoPE at load (qload) and WebGPU targets keep the scalar kernel.
  it('is chosen only for f16/bf16 at head widths 64/128 on CUDA, never with qload or on WebGPU', () => {
    const node = (t: string, dk: number, dv: number, extra = '', vt = t): string => `graph attn(B, T) {
  %0 = input {name="q"} : ${t}[B,2,T,${dk}]
  %1 = input {name="k"} : ${t}[B,2,T,${dk}]
  %2 = input {name="v"} : ${vt}[B,2,T,${dv}]
  %3 = input {name="c"} : f32[T,${dk}]
  %4 = fused_attention %0, %1, %2, %3 {mask=(b, h, q, k) => le(k, q), scale=0.25${extra}} : ${t}[B,2,T,${dv}]
  output "o" = %4
}`;
    const usesMma = (text: string, limits = cudaLimits): boolean => {
      const ks = lowerToKernels(parsed(text), limits, chooseSchedule(limits)).kernels.filter((k) => k.op === 'fused_attention');
      // One prefill kernel (CPU targets add a long-prompt one); with mma, it is the only one.
      expect(ks.length).toBeGreaterThanOrEqual(1);
      const mma = ks.filter((k) => k.schedule.kind === 'flash_attention' && k.schedule.mma !== undefined);
      if (mma.length > 0) expect(ks.length).toBe(1);
      return mma.length > 0;
    };
    expect(usesMma(node('f16', 64, 64))).toBe(true);
    expect(usesMma(node('bf16', 128, 64))).toBe(true);
    expect(usesMma(node('f16', 64, 128))).toBe(true);
    expect(usesMma(node('f16', 32, 32))).toBe(false);
    expect(usesMma(node('f16', 96, 96))).toBe(false);
    expect(usesMma(node('f32', 64, 64))).toBe(false);
    expect(usesMma(node('f16', 64, 64, '', 'bf16'))).toBe(false);
    expect(usesMma(node('f16', 64, 64, ', qload=(b, h, t, d) => mul:f32(read(0, b, h, t, d), read(3, t, d)), qshape=dims[B,2,T,64]'))).toBe(false);
    expect(usesMma(node('f16', 64, 64), lavapipeLimits)).toBe(false);
  });
});
