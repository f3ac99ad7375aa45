// The tensor-core attention backward (src/kernel/attention/mma-backward.ts) on the CUDA CPU
// emulator vs the float64 interpreter: f16 and bf16 q, k, v, o, dO; causal, full cross-attention
// (S != T), sliding window, a soft-cap score mod with its derivative, GQA 4/2, head widths 64 and
// 128 (32 x 32 tiles), T not a multiple of the tiles.
// Operands: q, k, v, dO seeded and rounded to the dtype; o and the LSE from the interpreter's
// forward (f32 graph) on those, o rounded to the dtype. The reference is fused_attention_grad in
// f32 on exactly these operands, so the error is the kernel's own: P and dS rounded to the dtype
// as mma A operands (FlashAttention-2 does the same), dQ/dK/dV rounded to the dtype when stored,
// f32 accumulation otherwise. Measured as max|err| / max|ref| per output (relative error per
// element would divide by gradients that cancel to near zero).
import { describe, expect, it } from 'vitest';
import { DiagnosticSink } from '../../src/diag/diagnostic.js';
import type { Graph } from '../../src/graph/ir.js';
import { parseGraph } from '../../src/graph/parse.js';
import { compilePlan } from '../../src/compile/plan.js';
import type { Plan } from '../../src/kernel/plan/plan.js';
import { lowerToKernels } from '../../src/kernel/lower/lower.js';
import { ScheduleError, chooseSchedule, cudaLimits, lavapipeLimits } from '../../src/kernel/schedule/schedule.js';
import { runPlanEmulated } from '../../src/runtime-cuda/emulate.js';
import { type LauncherMode, detectNvidiaGpu } from '../../src/runtime-cuda/launcher.js';
import { bf16Bits, bf16FromBits, f16Bits, f16FromBits } from '../../src/runtime/convert.js';
import { makeTensor, type Tensor64 } from '../../src/base/tensor.js';
import { printCudaModule } from '../../codegen/cuda/print.js';
import { findNvcc, ptxasStatsForArchs } from '../../codegen/cuda/ptxas.js';
import { bindDims, feedsFor, interpret } from './helpers.js';

type Dtype = 'f16' | 'bf16';
const rounder = (t: Dtype): ((x: number) => number) => (t === 'f16' ? (x) => f16FromBits(f16Bits(x)) : (x) => bf16FromBits(bf16Bits(x)));

interface Form {
  readonly what: string;
  readonly hq: number;
  readonly hkv: number;
  readonly d: number;
  readonly cross: boolean; // keys along S (S = T + 9) instead of T
  readonly attrs: string;
  /** Forced tiles (default: chooseSchedule's); smaller ones make block sparsity skip tiles at T = 70. */
  readonly tiles?: { readonly tileRows: number; readonly tileCols: number };
  /** The LSE output has a cotangent (attention sinks): D = dO.o - dLSE. */
  readonly dlse?: boolean;
}
const causal = 'mask=(b, h, q, k) => le(k, q)';
const forms: readonly Form[] = [
  { what: 'causal', hq: 2, hkv: 2, d: 64, cross: false, attrs: `${causal}, scale=0.125` },
  { what: 'full cross-attention, GQA 4/2', hq: 4, hkv: 2, d: 64, cross: true, attrs: 'scale=0.13' },
  { what: 'sliding window 20', hq: 2, hkv: 2, d: 64, cross: false, attrs: 'mask=(b, h, q, k) => and(le(k, q), lt(sub(q, k), 20)), scale=0.125' },
  {
    what: 'soft-cap score mod, causal',
    hq: 2,
    hkv: 2,
    d: 64,
    cross: false,
    attrs: `${causal}, scale=0.25, score=(b, h, q, k) => mul(2.0, tanh(mul(score(), 0.5))), dscore=(b, h, q, k) => sub(1.0, mul(tanh(mul(score(), 0.5)), tanh(mul(score(), 0.5))))`,
  },
  { what: 'causal GQA 4/2 at dk = dv = 128', hq: 4, hkv: 2, d: 128, cross: false, attrs: `${causal}, scale=0.088` },
  { what: 'causal with an LSE cotangent', hq: 2, hkv: 2, d: 64, cross: false, attrs: `${causal}, scale=0.125, lse_cotangent=true`, dlse: true },
  // Dead tiles skipped in both roles, 32-row x 16-key tiles (the dK/dV role's second warp idles), and the transpose.
  { what: 'sliding window 20, 32 x 16 tiles', hq: 2, hkv: 2, d: 64, cross: false, attrs: 'mask=(b, h, q, k) => and(le(k, q), lt(sub(q, k), 20)), scale=0.125', tiles: { tileRows: 32, tileCols: 16 } },
  { what: 'sliding window 20, 16 x 32 tiles', hq: 2, hkv: 2, d: 64, cross: false, attrs: 'mask=(b, h, q, k) => and(le(k, q), lt(sub(q, k), 20)), scale=0.125', tiles: { tileRows: 16, tileCols: 32 } },
];

/** The forward (o, LSE) in f32 and the backward in `t` of one form; lse is f32 in both. */
function texts(f: Form, t: string): { fwd: string; bwd: string } {
  const K = f.cross ? 'S' : 'T';
  const ins = (x: string) => `  %0 = input {name="q"} : ${x}[B,${f.hq},T,${f.d}]
  %1 = input {name="k"} : ${x}[B,${f.hkv},${K},${f.d}]
  %2 = input {name="v"} : ${x}[B,${f.hkv},${K},${f.d}]`;
  const dimList = f.cross ? 'B, T, S' : 'B, T';
  const fwd = `graph fwd(${dimList}) {
${ins('f32')}
  %3 = fused_attention %0, %1, %2 {${f.attrs.replace(/, (dscore|lse_cotangent)=.*$/, '')}} : f32[B,${f.hq},T,${f.d}]
  %4 = fused_attention_lse %3 : f32[B,${f.hq},T]
  output "o" = %3
  output "lse" = %4
}`;
  const bwd = `graph bwd(${dimList}) {
${ins(t)}
  %3 = input {name="o"} : ${t}[B,${f.hq},T,${f.d}]
  %4 = input {name="lse"} : f32[B,${f.hq},T]
  %5 = input {name="do"} : ${t}[B,${f.hq},T,${f.d}]
  %6 = input {name="dlse"} : f32[B,${f.hq},T]
  %7 = fused_attention_grad %0, %1, %2, %3, %4, %5${f.dlse === true ? ', %6' : ''} {${f.attrs}} : ${t}[B,${f.hq},T,${f.d}]
  %8 = fused_attention_grad_k %7 : ${t}[B,${f.hkv},${K},${f.d}]
  %9 = fused_attention_grad_v %7 : ${t}[B,${f.hkv},${K},${f.d}]
  output "dq" = %7
  output "dk" = %8
  output "dv" = %9
}`;
  return { fwd, bwd };
}

function parsed(text: string): Graph {
  const sink = new DiagnosticSink();
  const g = parseGraph(text, 'bwd.ir', sink);
  expect(sink.items.map((d) => d.message)).toEqual([]);
  if (g === undefined) throw new Error('no graph');
  return g;
}

function scaledError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let err = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) {
    err = Math.max(err, Math.abs((got[i] ?? NaN) - (want[i] ?? NaN)));
    scale = Math.max(scale, Math.abs(want[i] ?? NaN));
  }
  return got.length === want.length && Number.isFinite(err) ? err / Math.max(scale, 1e-30) : Infinity;
}

// Bound per output, of max|ref|: P rounded to nearest even (2^-11 f16, 2^-8 bf16 relative) enters
// dS as a factor and dS is rounded again, so up to two roundings per product term, plus for f16
// the gradient's own rounding (2^-11): 2^-7 for bf16; f16 stays within 2^-10. Measured (emulator):
// f16 4.6e-4 .. 5.7e-4, bf16 1.9e-3 .. 3.2e-3 (the worst at dk = dv = 128).
const tolerance = { f16: 2 ** -10, bf16: 2 ** -7 } as const;

const modes: readonly LauncherMode[] = detectNvidiaGpu() === undefined ? ['emu'] : ['emu', 'nvcc'];

/** Scaled error per output and mode at B = 1 (2 for GQA), T (S = T + 9). */
function errors(f: Form, t: Dtype, plan: Plan, T: number, only?: LauncherMode, mutate?: (p: Plan) => Plan): Map<string, number> {
  const { fwd, bwd } = texts(f, t);
  const B = f.hq > f.hkv ? 2 : 1;
  const dims = new Map([['B', B], ['T', T], ['S', T + 9]]);
  const fg = parsed(fwd);
  const r = rounder(t);
  const raw = feedsFor(parsed(bwd), dims, 7 + T).inputs;
  const rounded = (x: Tensor64): Tensor64 => makeTensor('f32', x.shape, Array.from(x.data, r));
  const qkv = new Map(['q', 'k', 'v'].map((k): [string, Tensor64] => [k, rounded(raw.get(k) ?? makeTensor('f32', [0]))]));
  const fo = interpret(fg, { inputs: qkv, weights: new Map() }).outputs;
  const o = fo.get('o');
  const lse = fo.get('lse');
  if (o === undefined || lse === undefined) throw new Error('no forward');
  const inputs32 = new Map([...qkv, ['o', rounded(o)], ['lse', lse], ['do', rounded(raw.get('do') ?? o)], ['dlse', raw.get('dlse') ?? lse]]);
  const want = interpret(parsed(bwd.replaceAll(`${t}[`, 'f32[')), { inputs: inputs32, weights: new Map() }).outputs;
  const inputs = new Map([...inputs32].map(([k, x]): [string, Tensor64] => [k, k === 'lse' || k === 'dlse' ? x : makeTensor(t, x.shape, Array.from(x.data))]));
  const g = parsed(bwd);
  const out = new Map<string, number>();
  for (const mode of only === undefined ? modes : [only]) {
    const got = runPlanEmulated(mutate === undefined ? plan : mutate(plan), bindDims(g, { inputs, weights: new Map() }), new Map([...inputs].map(([k, x]) => [k, x.data])), { mode });
    for (const [name, w] of want) out.set(`${name} (${mode})`, scaledError(got.outputs.get(name) ?? [], w.data));
  }
  return out;
}

const scheduleOf = (f: Form) => ({ ...chooseSchedule(cudaLimits), ...(f.tiles === undefined ? {} : { mmaAttentionBackward: f.tiles }) });
const planOf = (f: Form, t: Dtype): Plan => compilePlan(parsed(texts(f, t).bwd), { target: cudaLimits, schedule: scheduleOf(f) });

describe('tensor-core attention backward on the CUDA emulator vs the float64 interpreter', () => {
  for (const t of ['f16', 'bf16'] as const) {
    for (const f of forms) {
      it(`${t}: ${f.what}`, () => {
        const plan = planOf(f, t);
        const ks = plan.kernels.filter((k) => k.name.includes('fused_attention_grad'));
        expect(ks.length).toBe(1);
        const src = ks[0]?.source.cuda ?? '';
        // S^T, dP^T, S, dP from shared tiles; dV, dK, dQ from the P / dS registers.
        expect(src).toContain(`tfc_mma_tile_${t}_bt(`);
        expect(src).toContain(`tfc_mma_regs_${t}(`);
        let worst = 0;
        const sc = lowerToKernels(parsed(texts(f, t).bwd), cudaLimits, scheduleOf(f)).kernels.find((k) => k.op === 'fused_attention_grad')?.schedule;
        expect(sc).toMatchObject({ mma: t, ...(f.tiles ?? {}) });
        for (const T of f.tiles !== undefined ? [70] : [f.d === 128 ? 45 : 21, 70]) {
          for (const [name, e] of errors(f, t, plan, T)) {
            worst = Math.max(worst, e);
            expect(e, `${t} ${f.what} ${name} at T=${T}`).toBeLessThan(tolerance[t]);
          }
        }
        console.log(`mma attention backward ${t} ${f.what}: worst max|err|/max|ref| ${worst.toExponential(2)}`);
      }, 900_000);
    }
  }

  it('fails when dS ignores the row term D (the dK/dV role reads D as 0)', () => {
    const f = forms[0] as Form;
    const mutate = (p: Plan): Plan => ({
      ...p,
      kernels: p.kernels.map((k) => {
        const src = k.source.cuda ?? '';
        if (!src.includes('tfc_mma_regs_f16(')) return k;
        const next = src.replace(/(const float d_r\d* = )d_tile\[[^\]]*\];/, '$10.0f;');
        expect(next, k.name).not.toBe(src);
        return { ...k, source: { ...k.source, cuda: next } };
      }),
    });
    const e = errors(f, 'f16', planOf(f, 'f16'), 21, 'emu', mutate);
    expect(e.get('dk (emu)') ?? 0).toBeGreaterThan(tolerance.f16);
    expect(e.get('dq (emu)') ?? 1).toBeLessThan(tolerance.f16); // the dQ role reads D elsewhere: untouched
  }, 900_000);

  // Which nodes take it (no emulator), and the schedule's checks.
  it('is chosen only for f16/bf16 at head widths 64/128 on CUDA; an illegal schedule names its field', () => {
    const node = (t: string, d: number, extra = ''): string => `graph attn(B, T) {
  %0 = input {name="q"} : ${t}[B,2,T,${d}]
  %1 = input {name="k"} : ${t}[B,2,T,${d}]
  %2 = input {name="v"} : ${t}[B,2,T,${d}]
  %3 = input {name="o"} : ${t}[B,2,T,${d}]
  %4 = input {name="lse"} : f32[B,2,T]
  %5 = input {name="do"} : ${t}[B,2,T,${d}]
  %6 = fused_attention_grad %0, %1, %2, %3, %4, %5 {mask=(b, h, q, k) => le(k, q), scale=0.25${extra}} : ${t}[B,2,T,${d}]
  output "dq" = %6
}`;
    const schedOf = (text: string, limits = cudaLimits, s = chooseSchedule(limits)) => {
      const ks = lowerToKernels(parsed(text), limits, s).kernels.filter((k) => k.op === 'fused_attention_grad');
      expect(ks.length).toBe(1);
      const sc = ks[0]?.schedule;
      return sc?.kind === 'flash_attention' ? sc : undefined;
    };
    expect(schedOf(node('f16', 64))).toMatchObject({ mma: 'f16', tileRows: 64, tileCols: 64, backward: true });
    expect(schedOf(node('bf16', 128))).toMatchObject({ mma: 'bf16', tileRows: 32, tileCols: 32 }); // halved to fit 48 KiB
    expect(schedOf(node('f16', 32))?.mma).toBeUndefined();
    expect(schedOf(node('f32', 64))?.mma).toBeUndefined();
    expect(schedOf(node('f16', 64), lavapipeLimits)?.mma).toBeUndefined();
    const forced = { ...chooseSchedule(cudaLimits), mmaAttentionBackward: { tileRows: 32, tileCols: 64 } };
    expect(schedOf(node('f16', 64), cudaLimits, forced)).toMatchObject({ mma: 'f16', tileRows: 32, tileCols: 64 });
    for (const [bad, field] of [[{ tileRows: 24, tileCols: 64 }, 'mmaAttentionBackward.tileRows'], [{ tileRows: 64, tileCols: 0 }, 'mmaAttentionBackward.tileCols']] as const) {
      let caught: unknown;
      try {
        schedOf(node('f16', 64), cudaLimits, { ...chooseSchedule(cudaLimits), mmaAttentionBackward: bad });
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(ScheduleError);
      expect((caught as ScheduleError).field).toBe(field);
    }
  });
});

// Every form's f16 backward kernel (but dLSE's: one more row load) and the bf16 causal ones at 64 and 128 (bf16 took the same
// registers as f16 in every form when all were compiled), renamed apart, in one module compiled
// for sm_80 and sm_90a (cached by content, codegen/cuda/ptxas.ts; minutes cold): the
// S/dP/dK/dV/dQ accumulators must stay in registers (no spills, no stack frame).
// TFC_PTXAS_LOG=1 prints registers and shared memory.
const nvcc = findNvcc();
describe.runIf(nvcc !== undefined)('the tensor-core attention backward under nvcc', () => {
  it('compiles for sm_80 and sm_90a without spills or a stack frame', () => {
    const kernels = (['f16', 'bf16'] as const).flatMap((t) =>
      forms.flatMap((f, i) => ((t === 'bf16' && f.what !== 'causal' && f.d !== 128) || f.dlse === true ? [] : [[f, i] as const])).map(([f, i]) => {
        const k = lowerToKernels(parsed(texts(f, t).bwd), cudaLimits, scheduleOf(f)).kernels.find((x) => x.op === 'fused_attention_grad');
        if (k === undefined) throw new Error('no backward kernel');
        return { ...k, name: `bwd_${t}_${i}_${f.d}` };
      }),
    );
    const stats = ptxasStatsForArchs(printCudaModule(kernels), ['sm_80', 'sm_90a'], nvcc);
    const rows: string[] = [];
    for (const [arch, byName] of stats) {
      for (const k of kernels) {
        const st = byName.get(k.name);
        expect(st, `${k.name} ${arch}`).toBeDefined();
        expect([k.name, arch, st?.spillStoreBytes, st?.spillLoadBytes, st?.stackFrameBytes]).toEqual([k.name, arch, 0, 0, 0]);
        expect(st?.sharedBytes ?? Infinity).toBeLessThanOrEqual(cudaLimits.maxWorkgroupStorageBytes);
        rows.push(`${arch} ${k.name}: ${st?.registers} registers, ${st?.sharedBytes} B smem`);
      }
    }
    expect(rows.length).toBe(2 * kernels.length);
    if (process.env['TFC_PTXAS_LOG'] === '1') console.log(rows.join('\n'));
  }, 900_000);
});
