// `--dtype f16` end to end on WebGPU (lavapipe, shader-f16), issue 15 item 4: f32 models retyped
// to f16 (compileModel's `dtype`), f32 weights and inputs narrowed at load, kernels that read and
// write f16 and accumulate in f32. Against the float64 interpreter on the f32 model with the
// ORIGINAL f32 weights and inputs (so the error includes the narrowing of the data), measured as
// the issue asks: max |got - want| / max |want| per output, bar 2e-3.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileModel } from '../../src/compile/model.js';
import { compilePlan } from '../../src/compile/plan.js';
import type { Graph } from '../../src/graph/ir.js';
import { interpret } from '../../src/interp/interpret.js';
import { makeTensor, type Tensor64 } from '../../src/base/tensor.js';
import type { Plan } from '../../src/kernel/plan/plan.js';
import type { RunOutput } from '../../src/runtime/session.js';
import { createSession } from '../../src/runtime/session.js';
import { targetLimitsOf } from '../../src/runtime/target.js';
import { exampleFiles, exampleReference, repoRoot, smallOverrides } from '../helpers/examples.js';
import { maxRelToScale, tensorFor } from '../helpers/tensors.js';
import { randomWeights } from '../../src/cli/random.js';
import { neededTensors } from '../../src/io/check-tensors.js';
import { deviceAndSessions, seeded } from './helpers.js';
import { describeModel } from '../../codegen/host/emit.js';
import { readSafetensors, writeSafetensors } from '../../src/io/safetensors.js';
import { RuntimeError } from '../../src/runtime/errors.js';
import { createLoadedModel } from '../../src/runtime/host.js';

const gpu = deviceAndSessions();

/** The model through the webgpu pipeline with --dtype f16 (or as written), planned for this device. */
function planOf(text: string, file: string, overrides: Record<string, number>, dtype: 'f16' | undefined): { checked: Graph; fused: Graph; plan: Plan } {
  const c = compileModel({ file, text }, { overrides: new Map(Object.entries(overrides)), target: 'webgpu', ...(dtype === undefined ? {} : { dtype }) });
  return { checked: c.checked, fused: c.graph, plan: compilePlan(c.graph, { target: targetLimitsOf(gpu.dev) }) };
}

async function run(plan: Plan, weights: ReadonlyMap<string, Tensor64>, inputs: ReadonlyMap<string, Tensor64>): Promise<{ outputs: ReadonlyMap<string, RunOutput>; peakBytes: number; weightBytes: number }> {
  const s = await createSession(gpu.dev, plan);
  gpu.sessions.push(s);
  s.loadWeights(weights);
  const r = await s.run(inputs);
  return { outputs: r.outputs, peakBytes: r.memory.peakBytes, weightBytes: r.memory.weightBytes };
}

function expectWithin(outputs: ReadonlyMap<string, RunOutput>, want: ReadonlyMap<string, Tensor64>, what: string, bar: number): void {
  expect(want.size).toBeGreaterThan(0);
  for (const [name, w] of want) {
    const g = outputs.get(name);
    expect(g?.dtype, `${what} ${name}`).toBe(w.dtype === 'f32' ? 'f16' : w.dtype); // retyping keeps i8 (gpt2-kv-int8's cache) as it is
    expect(g?.shape, `${what} ${name}`).toEqual(w.shape);
    if (w.dtype === 'i8') {
      // Quantized values (round(x / s) in f16 arithmetic): f16 puts x / s ~1e-3 * 127 off, so
      // elements near a half-integer round the other way: one step apart, never more.
      const d = (g?.data ?? []).map((x, i) => Math.abs(x - (w.data[i] ?? NaN)));
      console.log(`${what} ${name}${JSON.stringify(w.shape)}: ${d.filter((x) => x !== 0).length} of ${d.length} quantized values one step off`);
      expect(Math.max(...d), `${what} ${name}`).toBeLessThanOrEqual(1);
      continue;
    }
    const e = maxRelToScale(g?.data ?? [], w);
    console.log(`${what} ${name}${JSON.stringify(w.shape)}: max|diff| / max|want| = ${e.toExponential(2)}`);
    expect(e, `${what} ${name}`).toBeLessThanOrEqual(bar);
  }
}

describe('--dtype f16 on WebGPU', () => {
  it('runs on an adapter with shader-f16 (lavapipe has it)', () => {
    expect(gpu.dev.features.has('shader-f16')).toBe(true);
  });

  it('GPT-2 tiny: f16 storage everywhere, logits within 2e-3 of float64, about half the peak memory of f32', { timeout: 300_000 }, async () => {
    const file = join('examples', 'gpt2.tfx');
    const text = readFileSync(join(repoRoot, file), 'utf8');
    const config = { layers: 2, d: 64, heads: 4, vocab: 256, ctx: 64 };
    const half = planOf(text, file, config, 'f16');
    const full = planOf(text, file, config, undefined);
    // Every weight, input and output the model declares f32 is f16 in the plan; so is every
    // activation between kernels except the f32 partial sums of K-split kernels.
    for (const b of half.plan.buffers) if (b.kind !== 'temp' && b.dtype !== 'i32') expect(`${b.kind} ${b.name ?? b.id}: ${b.dtype}`).toBe(`${b.kind} ${b.name ?? b.id}: f16`);
    const temps = half.plan.buffers.filter((b) => b.kind === 'temp');
    expect(temps.filter((b) => b.dtype === 'f16').length).toBeGreaterThan(temps.length / 2);
    for (const k of half.plan.kernels) if (k.source.wgsl.includes('f16')) expect(k.source.wgsl, k.name).toMatch(/^enable f16;$/m);
    // vec4<f16> loads: the lane matmul reads A and W 4 halves at a time.
    expect(half.plan.kernels.some((k) => k.source.wgsl.includes('array<vec4<f16>>'))).toBe(true);

    const dims = new Map([['B', 2], ['T', 17]]);
    const weights = randomWeights(neededTensors(full.checked), 5, dims, []);
    const tokens = makeTensor('i32', [2, 17], Array.from(seeded(34, 6), (x) => Math.floor(((x + 1) / 2) * 256)));
    const inputs = new Map([['tokens', tokens]]);
    const want = interpret(full.checked, { weights, inputs }).outputs;
    // The f32 weights go in as they are: the session narrows them to f16 at load.
    const h = await run(half.plan, weights, inputs);
    expectWithin(h.outputs, want, 'GPT-2 tiny f16', 2e-3);

    const f = await run(full.plan, weights, inputs);
    console.log(`GPT-2 tiny peak GPU memory: f16 ${h.peakBytes} B, f32 ${f.peakBytes} B (${(h.peakBytes / f.peakBytes).toFixed(3)}); weights ${h.weightBytes} / ${f.weightBytes}`);
    // Weights are exactly half (buffers pad to 4 bytes: none of GPT-2's tensors has an odd count).
    expect(h.weightBytes).toBe(f.weightBytes / 2);
    expect(h.peakBytes / f.peakBytes).toBeLessThanOrEqual(0.55);
  });

  it('GPT-2 mid size (4 layers, d 256, vocab 4096, T 64): logits within 2e-3 of float64, peak memory ratio near one half', { timeout: 600_000 }, async () => {
    // The issue's GPT-2 small figure comes from bench/gpt2-small-f16.mjs (the float64 reference of
    // the full size takes minutes); this size runs in the suite. Bar: the tiny model's 2e-3 (f16
    // storage rounds each weight and stored activation by <= 2^-11; the accumulation is f32).
    const file = join('examples', 'gpt2.tfx');
    const text = readFileSync(join(repoRoot, file), 'utf8');
    const config = { layers: 4, d: 256, heads: 4, vocab: 4096, ctx: 128 };
    const half = planOf(text, file, config, 'f16');
    const full = planOf(text, file, config, undefined);
    const dims = new Map([['B', 1], ['T', 64]]);
    const weights = randomWeights(neededTensors(full.checked), 7, dims, []);
    const tokens = makeTensor('i32', [1, 64], Array.from(seeded(64, 8), (x) => Math.floor(((x + 1) / 2) * 4096)));
    const inputs = new Map([['tokens', tokens]]);
    const want = interpret(full.checked, { weights, inputs }).outputs;
    const h = await run(half.plan, weights, inputs);
    expectWithin(h.outputs, want, 'GPT-2 mid f16', 2e-3);
    const f = await run(full.plan, weights, inputs);
    const ratio = h.peakBytes / f.peakBytes;
    console.log(`GPT-2 mid peak GPU memory (runtime MemoryReport): f16 ${h.peakBytes} B, f32 ${f.peakBytes} B, ratio ${ratio.toFixed(3)}`);
    // Weights dominate at this size and halve exactly; f32 temps (K-split partials) and uniforms
    // keep the ratio a little above 0.5.
    expect(h.weightBytes).toBe(f.weightBytes / 2);
    expect(ratio).toBeGreaterThanOrEqual(0.45);
    expect(ratio).toBeLessThanOrEqual(0.55);
  });

  it('loads a bf16 checkpoint into the f16 model (bf16 -> f16 at load), and refuses a bf16 value past f16 range (TFC315)', { timeout: 300_000 }, async () => {
    const file = join('examples', 'gpt2.tfx');
    const text = readFileSync(join(repoRoot, file), 'utf8');
    const config = { layers: 2, d: 64, heads: 4, vocab: 256, ctx: 64 };
    const half = planOf(text, file, config, 'f16');
    const full = planOf(text, file, config, undefined);
    const dims = new Map([['B', 1], ['T', 9]]);
    const raw = randomWeights(neededTensors(full.checked), 9, dims, []);
    // The checkpoint as a bf16 file; its exact values (bf16-rounded) are the reference's weights.
    const bf16 = new Map([...raw].map(([k, t]) => [k, { ...t, dtype: 'bf16' as const }]));
    const bytes = writeSafetensors(bf16);
    const exact = new Map([...readSafetensors(bytes, 'ckpt.safetensors').tensors].map(([k, t]) => [k, { ...t, dtype: 'f32' as const }]));
    expect([...exact.values()].some((t, i) => t.data.some((v, j) => v !== [...raw.values()][i]?.data[j]))).toBe(true);
    const tokens = makeTensor('i32', [1, 9], [1, 200, 3, 45, 67, 8, 90, 10, 255]);
    const want = interpret(full.checked, { weights: exact, inputs: new Map([['tokens', tokens]]) }).outputs;
    const model = await createLoadedModel(gpu.dev, half.plan, { name: half.plan.model, ...describeModel(half.plan), context: 64 }, bytes, { warmUp: false });
    try {
      const out = await model.forward({ tokens: { dtype: 'i32', shape: [1, 9], data: Int32Array.from(tokens.data) } });
      expectWithin(out, want, 'GPT-2 tiny from a bf16 checkpoint', 2e-3);
    } finally {
      model.dispose();
    }
    // 1e5 is a bf16 value (0x47C3 = 99840) beyond f16's 65504: refused by name, nothing uploaded.
    const big = new Map(bf16);
    const wte = bf16.get('wte.weight');
    if (wte === undefined) throw new Error('no wte.weight');
    big.set('wte.weight', { ...wte, data: wte.data.map((v, i) => (i === 5 ? 1e5 : v)) });
    const err = await createLoadedModel(gpu.dev, half.plan, { name: half.plan.model, ...describeModel(half.plan), context: 64 }, writeSafetensors(big), { warmUp: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RuntimeError);
    expect((err as RuntimeError).code).toBe('TFC315');
    expect((err as RuntimeError).message).toBe("weight 'wte.weight' (f32 data for f16): element 5 is 99840, beyond f16's range (largest finite 65504): it would be stored as infinity");
  });

  // Every example under examples/variants (the attention variants), fused, in f16: each softmax is
  // fused (score mods included: their lambda runs in f32) and every output within 2e-3.
  const variants = exampleFiles.filter((f) => f.startsWith(join('examples', 'variants')));
  it('finds the attention variants', () => {
    expect(variants.length).toBeGreaterThanOrEqual(12);
  });
  it.each(variants)('%s in f16 within 2e-3 of float64', { timeout: 600_000 }, async (file) => {
    const { weights, inputs, want } = exampleReference(file, { weights: 11, inputs: 12 });
    const { fused, plan } = planOf(readFileSync(join(repoRoot, file), 'utf8'), file, smallOverrides(file), 'f16');
    expect(fused.nodes.filter((n) => n.op === 'softmax').map((n) => n.loc.line)).toEqual([]);
    expect(fused.nodes.some((n) => n.op === 'fused_attention')).toBe(true);
    const r = await run(plan, weights, inputs);
    expectWithin(r.outputs, want, file, 2e-3);
  });
});

// The masks and score mods of test/webgpu/attention.test.ts, written as .tfx models (so
// fuse-attention builds them from f16 graphs), on the schedule lavapipe's limits choose: the
// broadcast prefill at T = 17 and 200, split-K decode at T = 1.
interface MaskCase {
  readonly name: string;
  /** Extra declarations (inputs the mask or mod reads). */
  readonly decls?: string;
  /** Statements before the attention; `s` is q @ transpose(k) * 0.25. */
  readonly lets?: string;
  /** What the softmax sees. */
  readonly scores?: string;
  /** A whole model body instead (GQA). */
  readonly body?: string;
  readonly hq?: number;
  readonly hkv?: number;
  readonly cross?: (T: number) => number;
  readonly B?: number;
  readonly feeds?: (T: number, S: number, B: number) => Record<string, Tensor64>;
  readonly check?: (o: ArrayLike<number>, T: number) => void;
}

const causal = 'causal = grid[T, T](i, j) => j <= i';
const maskCases: MaskCase[] = [
  { name: 'no mask', scores: 's', B: 2 },
  { name: 'causal', lets: causal, scores: 'where(causal, s, -inf)' },
  { name: 'sliding window of 5', lets: 'w = grid[T, T](i, j) => j <= i && i - j < 5', scores: 'where(w, s, -inf)' },
  { name: 'prefix-LM (prefix 6)', lets: 'pre = grid[T, T](i, j) => j <= i || j < 6', scores: 'where(pre, s, -inf)' },
  {
    name: 'document mask (ids from a tensor)',
    decls: 'input doc: i32[B, T]',
    lets: 'same = grid[B, 1, T, T](b, h, i, j) => j <= i && doc[b, i] == doc[b, j]',
    scores: 'where(same, s, -inf)',
    B: 2,
    feeds: (T, _S, B) => ({ doc: tensorFor('i32', [B, T], 91, 3) }),
  },
  {
    name: 'varlen causal + padding (lengths 0, 5, T)',
    decls: 'input len: i32[B]',
    lets: 'vis = grid[B, 1, T, T](b, h, i, j) => j <= i && j < len[b]',
    scores: 'where(vis, s, -inf)',
    B: 3,
    feeds: (T) => ({ len: makeTensor('i32', [3], [0, 5, T]) }),
    // Batch 0 has no keys: every row of both heads is exactly 0.
    check: (o, T) => {
      for (let i = 0; i < 2 * T * 16; i++) expect(o[i]).toBe(0);
    },
  },
  {
    name: 'ALiBi',
    decls: 'input slope: f32[2]',
    lets: `${causal}\n  bias = grid[2, T, T](h, i, j) => slope[h] * (j - i)`,
    scores: 'where(causal, s + bias, -inf)',
    feeds: () => ({ slope: makeTensor('f32', [2], [0.5, 0.0625]) }),
  },
  { name: 'soft-cap', lets: `${causal}\n  s4 = q @ transpose(k) * 4.0`, scores: 'where(causal, 5.0 * tanh(s4 / 5.0), -inf)' },
  {
    name: 'relative bias from a table',
    decls: 'input rel: f32[2, 32]',
    lets: `${causal}\n  bias = grid[2, T, T](h, i, j) => rel[h, min(max(i - j, 0), 31)]`,
    scores: 'where(causal, s + bias, -inf)',
    feeds: () => ({ rel: tensorFor('f32', [2, 32], 92) }),
  },
  {
    name: 'GQA (4 query heads, 2 KV heads)',
    hq: 4,
    body: `  qg = reshape(q, [B, 2, 2, T, 16])
  kg = reshape(k, [B, 2, 1, T, 16])
  vg = reshape(v, [B, 2, 1, T, 16])
  ${causal}
  o = reshape(softmax(where(causal, qg @ transpose(kg) * 0.25, -inf), axis=-1) @ vg, [B, 4, T, 16])`,
  },
  { name: 'MQA (4 query heads, 1 KV head)', hq: 4, hkv: 1, lets: causal, scores: 'where(causal, s, -inf)' },
  { name: 'cross-attention (T != S)', scores: 's', cross: (T) => 2 * T + 5 },
  { name: 'KV cache: causal over S = P + T', lets: 'kv = grid[T, S](i, j) => j <= i + S - T', scores: 'where(kv, s, -inf)', cross: (T) => T + 40 },
  {
    name: 'fully masked rows give 0',
    lets: 'm = grid[T, T](i, j) => j <= i && i >= 11',
    scores: 'where(m, s, -inf)',
    check: (o, T) => {
      for (let h = 0; h < 2; h++) for (let q = 0; q < Math.min(11, T); q++) for (let j = 0; j < 16; j++) expect(o[(h * T + q) * 16 + j]).toBe(0);
    },
  },
  {
    // Integer q and k up to 25 (exact in f16): q.k reaches +-1e4, far past what f16 scores could
    // hold after exp; the kernels keep scores in f32.
    name: 'logits of +-1e4',
    lets: `${causal}\n  s1 = q @ transpose(k)`,
    scores: 'where(causal, s1, -inf)',
    feeds: (T, S, B) => ({
      q: makeTensor('f32', [B, 2, T, 16], Array.from(seeded(B * 2 * T * 16, 93), (x) => Math.round(x * 25))),
      k: makeTensor('f32', [B, 2, S, 16], Array.from(seeded(B * 2 * S * 16, 94), (x) => Math.round(x * 25))),
    }),
    check: (o) => {
      for (let i = 0; i < o.length; i++) expect(Number.isFinite(o[i])).toBe(true);
    },
  },
];

function maskSource(c: MaskCase): string {
  const hq = c.hq ?? 2;
  const hkv = c.hkv ?? 2;
  const kv = c.cross !== undefined ? 'S' : 'T';
  const body = c.body ?? `  s = q @ transpose(k) * 0.25\n${c.lets !== undefined ? `  ${c.lets}\n` : ''}  o = softmax(${c.scores ?? 's'}, axis=-1) @ v`;
  return `dims B, T${c.cross !== undefined ? ', S' : ''}
input q: f32[B, ${hq}, T, 16]
input k: f32[B, ${hkv}, ${kv}, 16]
input v: f32[B, ${hkv}, ${kv}, 16]
${c.decls ?? ''}
output o: f32[B, ${hq}, T, 16]
model attn {
${body}
}
`;
}

describe('masks and score mods in f16 (fused attention, lavapipe schedule) within 2e-3 of float64', () => {
  it.each(maskCases.map((c) => [c.name, c] as const))('%s', { timeout: 300_000 }, async (_name, c) => {
    const text = maskSource(c);
    const { checked, fused, plan } = planOf(text, 'mask.tfx', {}, 'f16');
    expect(fused.nodes.filter((n) => n.op === 'fused_attention')).toHaveLength(1);
    const s = await createSession(gpu.dev, plan);
    gpu.sessions.push(s);
    const B = c.B ?? 1;
    for (const T of [1, 17, 200]) {
      const S = c.cross?.(T) ?? T;
      const kv = c.cross !== undefined ? S : T;
      const inputs = new Map<string, Tensor64>([
        ['q', tensorFor('f32', [B, c.hq ?? 2, T, 16], 81 + T)],
        ['k', tensorFor('f32', [B, c.hkv ?? 2, kv, 16], 82 + T)],
        ['v', tensorFor('f32', [B, c.hkv ?? 2, kv, 16], 83 + T)],
        ...Object.entries(c.feeds?.(T, kv, B) ?? {}),
      ]);
      // The reference: the same model as written (f32) on the same f32 data, in float64.
      const ref = compileModel({ file: 'mask.tfx', text }, { target: 'interp' }).checked;
      const want = interpret(ref, { inputs, weights: new Map() }).outputs;
      const r = await s.run(inputs);
      expectWithin(r.outputs, want, `${c.name} T=${T} S=${S}`, 2e-3);
      c.check?.(r.outputs.get('o')?.data ?? [], T);
      expect(checked.nodes.find((n) => n.op === 'input' && n.attrs['name']?.kind === 'str' && n.attrs['name'].value === 'q')?.type.dtype).toBe('f16');
    }
  });
});
