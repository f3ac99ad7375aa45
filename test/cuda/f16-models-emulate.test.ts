// `--dtype f16|bf16` on the CUDA backend (issue 15 item 4), on the CPU emulator: f32 models
// retyped by compileModel's `dtype`, run through the generated launcher, against the float64
// interpreter on the model AS WRITTEN (f32) with the original f32 data, so the error includes
// narrowing the weights and inputs. Measured as the issue asks: max |got - want| / max |want|.
// At d = 128 with 2 heads (dh 64) the f16/bf16 matmuls and the prefill attention take the tensor
// cores (mma.sync: kernel/matmul/mma.ts, kernel/attention/mma.ts), asserted on the plan; T = 1 runs the
// split-K decode attention.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compileModel } from '../../src/compile/model.js';
import { compilePlan } from '../../src/compile/plan.js';
import { cudaLimits } from '../../src/kernel/schedule/schedule.js';
import { runPlanEmulated } from '../../src/runtime-cuda/emulate.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import { tfc } from '../helpers/cli.js';
import { maxRelToScale } from '../helpers/tensors.js';
import { bindDims, feedsFor, interpret } from './helpers.js';

interface Case {
  readonly file: string;
  readonly overrides: Record<string, number>;
  readonly runs: readonly Record<string, number>[];
  /** Tensor-core kernels the plan must hold (matmul tiles, attention prefill). */
  readonly mma: { readonly matmul: boolean; readonly attention: boolean };
}

const cases: readonly Case[] = [
  // T = 33 prefill (mma attention: T above decodeMaxT, dh 64), T = 1 split-K decode.
  { file: 'examples/gpt2.tfx', overrides: { vocab: 64, ctx: 64, d: 128, heads: 2, layers: 2 }, runs: [{ B: 1, T: 33 }, { B: 2, T: 1 }], mma: { matmul: true, attention: true } },
  // GQA with a KV cache; RoPE in the Q load keeps attention on the scalar kernel.
  { file: 'examples/llama.tfx', overrides: { vocab: 64, d: 128, heads: 2, kv_heads: 1, layers: 1, ffn: 96 }, runs: [{ B: 1, T: 9, P: 4 }, { B: 1, T: 1, P: 9 }], mma: { matmul: true, attention: false } },
];

// Bars: f16 keeps 11 significant bits, so one rounding of each weight, input and stored
// activation is <= 2^-11 ~ 4.9e-4 relative; through 2 layers it stays within the 2e-3 (as
// on WebGPU). bf16 keeps 8 bits (2^-8 ~ 3.9e-3 per rounding): 2e-2, the bar for a whole
// model in reduced precision. Measured values are printed.
const bars = { f16: 2e-3, bf16: 2e-2 } as const;

describe('--dtype f16 and bf16 on the CUDA emulator vs float64', () => {
  for (const c of cases) {
    for (const dtype of ['f16', 'bf16'] as const) {
      it(`${c.file} --dtype ${dtype}`, () => {
        const text = readFileSync(c.file, 'utf8');
        const overrides = new Map(Object.entries(c.overrides));
        const half = compileModel({ file: c.file, text }, { overrides, target: 'cuda', dtype });
        const source = compileModel({ file: c.file, text }, { overrides, target: 'interp' }).checked;
        const plan = compilePlan(half.graph, { target: cudaLimits });
        // Weights, inputs and outputs are stored in the narrow type (bf16 lives as f32 in memory, rounded).
        for (const b of plan.buffers) if (b.kind !== 'temp' && b.dtype !== 'i32') expect(`${b.kind} ${b.name ?? ''} ${b.dtype}`).toBe(`${b.kind} ${b.name ?? ''} ${dtype}`);
        // Every kernel with matrix statements carries all the mma wrappers, so look in the
        // kernels of each kind: a matmul with the tile mma, the prefill attention kernel (not
        // split/combine) with the register-A mma of P V.
        const calls = (pattern: RegExp, call: string): boolean => plan.kernels.some((k) => pattern.test(k.name) && (k.source.cuda ?? '').includes(call));
        expect(calls(/matmul/, `tfc_mma_tile_${dtype}`), 'a tensor-core matmul').toBe(c.mma.matmul);
        expect(calls(/fused_attention$/, `tfc_mma_regs_${dtype}`), 'tensor-core attention').toBe(c.mma.attention);
        for (const run of c.runs) {
          const dims = new Map(Object.entries(run));
          const { inputs, weights } = feedsFor(source, dims, 3, 0.5);
          const want = interpret(source, { inputs, weights }).outputs;
          // The launcher's files take the buffers' dtypes: runPlanEmulated writes the f32 values
          // rounded to them (as the launcher rounds an F32 checkpoint at load).
          const feeds = new Map([...inputs, ...weights].map(([k, t]) => [k, t.data]));
          const r = runPlanEmulated(plan, bindDims(source, { inputs, weights }), feeds);
          expect(want.size).toBeGreaterThan(0);
          for (const [name, w] of want) {
            const e = maxRelToScale(r.outputs.get(name) ?? [], w);
            console.log(`cuda-emu ${c.file} ${dtype} ${JSON.stringify(run)} ${name}: max|diff| / max|want| = ${e.toExponential(2)}`);
            expect(e, `${name} with ${JSON.stringify(run)}`).toBeLessThanOrEqual(bars[dtype]);
          }
        }
      }, 900_000);
    }
  }
});

// The CLI path: an f32 weights file for a --dtype f16 model is rounded by the launcher as it
// uploads (tfc_runtime.h's conversion to the storage encoding), after tfc run's range check.
describe('tfc run --target cuda-emu --dtype f16', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tfc-cuda-f16-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const read = (p: string) => readSafetensors(new Uint8Array(readFileSync(p)), p).tensors;
  it('GPT-2 from f32 files matches the f32 model in float64 within 2e-3', async () => {
    const file = 'examples/gpt2.tfx';
    const set = 'vocab=64,ctx=64,d=128,heads=2,layers=1';
    const w = join(dir, 'w.safetensors');
    const i = join(dir, 'in.safetensors');
    expect((await tfc('init-weights', file, '--set', set, '--seed', '5', '--out', w)).code).toBe(0);
    expect((await tfc('random-inputs', file, '--set', set, '--set', 'B=1,T=20', '--seed', '6', '--out', i)).code).toBe(0);
    const ref = join(dir, 'interp.safetensors');
    const got = join(dir, 'emu.safetensors');
    expect((await tfc('run', file, '--set', set, '--weights', w, '--inputs', i, '--out', ref, '--target', 'interp')).code).toBe(0);
    const r = await tfc('run', file, '--set', set, '--weights', w, '--inputs', i, '--out', got, '--target', 'cuda-emu', '--dtype', 'f16');
    expect(r.stderr).toContain('cuda-emu (CPU emulator)');
    expect(r.code).toBe(0);
    const want = read(ref).get('logits');
    const have = read(got).get('logits');
    if (want === undefined || have === undefined) throw new Error('no logits');
    const e = maxRelToScale(have.data, want);
    console.log(`tfc run --target cuda-emu --dtype f16 gpt2: max|diff| / max|want| = ${e.toExponential(2)}`);
    expect(e).toBeLessThanOrEqual(bars.f16);
    expect(e).toBeGreaterThan(0);
  }, 900_000);
});
