// The int8 KV cache (examples/variants/gpt2-kv-int8.tfx) on WebGPU: i8 values stored four to a
// u32 word, one f32 scale per (token, head), quantized by the cache-write kernel and dequantized
// inside the fused attention kernel's K/V loads.
// - against PyTorch (test/oracle/kv_int8_oracle.py): prefill T=8 then three decode steps, each fed
//   the previous step's present; logits and scales within 1e-4 (max |tfc - torch| / max |torch|),
//   the i8 values exactly equal. The oracle picks a seed whose every x / s lies >= 5e-4 from a
//   rounding boundary (f32 puts x / s ~1e-5 off float64: nearer, f32 and float64 may round apart).
// - the attention is one fused_attention per layer reading the i8 cache and the scales itself (no
//   dequantized [B, H, P + T, dh] f32 tensor anywhere);
// - memory of the kept cache (GPU buffers of present.*) vs gpt2-kv.tfx's f32 cache at dh 64, and
//   the logits error of the int8 model against the f32-cache model over a prefill + 4 decode steps
//   (oracle weights and tokens), which must agree with the same error computed in float64;
// - no NaN: all-zero K/V rows (zero projection weights: every scale is qmin) and a mask that hides
//   every key from the first query row, against the interpreter.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkSource } from '../../src/check/check-source.js';
import { randomWeights } from '../../src/cli/random.js';
import { compilePlan } from '../../src/compile/plan.js';
import type { Diagnostic } from '../../src/diag/diagnostic.js';
import type { Graph } from '../../src/graph/ir.js';
import { printType } from '../../src/graph/types.js';
import { interpret } from '../../src/interp/interpret.js';
import { neededTensors } from '../../src/io/check-tensors.js';
import type { Tensor64 } from '../../src/base/tensor.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext } from '../../src/passes/pass.js';
import { pipelines } from '../../src/passes/pipeline.js';
import type { AcquiredDevice } from '../../src/runtime/device.js';
import { type DeviceTensor, type HostTensor, type Session, createSession } from '../../src/runtime/session.js';
import { targetLimitsOf } from '../../src/runtime/target.js';
import { createLoadedModel } from '../../src/runtime/host.js';
import { writeSafetensors } from '../../src/io/safetensors.js';
import { describeModel } from '../../codegen/host/model-shape.js';
import { readOracle, relError as oracleError, runOracle, torchMissingReason } from '../oracle/oracle.js';
import { testDevice } from './helpers.js';

const noTorch = torchMissingReason() !== undefined;
const INT8 = 'examples/variants/gpt2-kv-int8.tfx';
const F32 = 'examples/variants/gpt2-kv.tfx';

let dev: AcquiredDevice;
beforeAll(async () => {
  dev = await testDevice();
});
afterAll(() => dev.device.destroy());

function checked(file: string, config: Record<string, number>, edit: (src: string) => string = (s) => s): Graph {
  const r = checkSource(edit(readFileSync(file, 'utf8')), file, new Map(Object.entries(config)));
  if (r.graph === undefined) throw new Error(r.diagnostics.map((d) => d.message).join('; '));
  return r.graph;
}

function fused(g: Graph): Graph {
  return runPipeline(g, pipelines.webgpu, createPassContext({ target: 'webgpu' }));
}

async function session(g: Graph, weights: ReadonlyMap<string, Tensor64>): Promise<Session> {
  const s = await createSession(dev, compilePlan(fused(g), { target: targetLimitsOf(dev) }));
  s.loadWeights(weights);
  return s;
}

const asTensor = (t: { shape: readonly number[]; data: ArrayLike<number> }, dtype: Tensor64['dtype']): Tensor64 => ({ dtype, shape: [...t.shape], data: Float64Array.from(t.data) });

/** present.* outputs renamed past.* (the next call's cache). */
function pastOf<T>(outputs: ReadonlyMap<string, T>): Map<string, T> {
  return new Map([...outputs].filter(([n]) => n.startsWith('present.')).map(([n, t]) => [`past.${n.slice('present.'.length)}`, t]));
}

describe('int8 KV cache (gpt2-kv-int8.tfx) on WebGPU', () => {
  const config = { layers: 2, d: 64, heads: 4, vocab: 256, ctx: 64 };

  it('keeps the attention one fused kernel per layer that reads the i8 cache and its scales', () => {
    const g = fused(checked(INT8, config));
    const attn = g.nodes.filter((n) => n.op === 'fused_attention');
    expect(attn).toHaveLength(2);
    for (const a of attn) {
      expect(a.attrs['kload']).toBeDefined();
      expect(a.attrs['vload']).toBeDefined();
      const types = a.operands.map((o) => printType(g.nodes[o]?.type ?? { dtype: 'f32', shape: [] }));
      expect(types.filter((t) => t === 'i8[B,4,P+T,16]')).toHaveLength(2); // the K and V caches
      expect(types.filter((t) => t === 'f32[B,4,P+T,1]')).toHaveLength(2); // their scales
    }
    // Nothing materializes a dequantized cache, and the only readers of the i8 caches are the attentions.
    expect(g.nodes.filter((n) => printType(n.type) === 'f32[B,4,P+T,16]')).toEqual([]);
    const caches = new Set(g.nodes.filter((n) => printType(n.type) === 'i8[B,4,P+T,16]').map((n) => n.id));
    expect(caches.size).toBe(4);
    const readers = g.nodes.filter((n) => n.operands.some((o) => caches.has(o)));
    expect(new Set(readers.map((n) => n.op))).toEqual(new Set(['fused_attention']));
    // In the plan: the attention kernels read the i8 bindings through the byte-extracting helper.
    const plan = compilePlan(g, { target: targetLimitsOf(dev) });
    const attnKernels = plan.kernels.filter((k) => k.name.includes('fused_attention') && !k.name.includes('combine'));
    expect(attnKernels.length).toBeGreaterThan(0);
    for (const k of attnKernels) expect(k.source.wgsl).toMatch(/extractBits\(bitcast<i32>\(t\d+\[i >> 2u\]\)/);
  });

  it.skipIf(noTorch)('matches PyTorch: prefill T=8 then 3 decode steps (logits and scales 1e-4, i8 values exact)', { timeout: 600_000 }, async () => {
    const dir = runOracle('kv_int8_oracle.py', ['--seed', '0', '--min-margin', '5e-4', '--layers', '2', '--d', '64', '--heads', '4', '--vocab', '256', '--ctx', '64', '--batch', '2', '--seq', '8', '--steps', '3']);
    const meta = JSON.parse(readFileSync(`${dir}/meta.json`, 'utf8')) as { seed: number; margin: number; f32_cache_logits_error: number[] };
    expect(meta.margin).toBeGreaterThanOrEqual(5e-4);
    const prefill = readOracle(dir);
    const s = await session(checked(INT8, config), prefill.weights);
    try {
      let inputs: Map<string, HostTensor> = new Map(prefill.inputs);
      for (let i = 0; i < 4; i++) {
        const step = i === 0 ? prefill : readOracle(dir, `decode${i - 1}_`);
        if (i > 0) inputs.set('tokens', step.inputs.get('tokens') as Tensor64);
        const r = await s.run(inputs);
        expect(Object.fromEntries(r.dims)).toMatchObject({ B: 2, T: i === 0 ? 8 : 1, P: i === 0 ? 0 : 7 + i });
        for (const [name, want] of step.expected) {
          const got = r.outputs.get(name);
          if (got === undefined) throw new Error(`no output ${name}`);
          const err = oracleError(asTensor(got, want.dtype), want);
          console.log(`gpt2-kv-int8 step ${i} ${name}: max rel error ${err.toExponential(2)} (seed ${meta.seed}, margin ${meta.margin.toExponential(2)})`);
          if (got.dtype === 'i8') expect(err, `step ${i} ${name}: i8 values`).toBe(0);
          else expect(err, `step ${i} ${name}`).toBeLessThanOrEqual(1e-4);
        }
        inputs = new Map([['tokens', inputs.get('tokens') as HostTensor], ...pastOf(r.outputs)]);
      }
    } finally {
      s.dispose();
    }
  });

  /** Runs prefill + decode steps on both models (cache kept on the GPU between calls); per call the logits of each. */
  async function decodeBoth(cfg: Record<string, number>, weights: ReadonlyMap<string, Tensor64>, calls: readonly HostTensor[], shape: { B: number; H: number; DH: number; L: number }) {
    const si = await session(checked(INT8, cfg), weights);
    const sf = await session(checked(F32, cfg), weights);
    const { B, H, DH, L } = shape;
    const empty = (dtype: 'i8' | 'f32', last: number): HostTensor => ({ dtype, shape: [B, H, 0, last], data: [] });
    let cacheI: Map<string, HostTensor | DeviceTensor> = new Map();
    let cacheF: Map<string, HostTensor | DeviceTensor> = new Map();
    for (let l = 0; l < L; l++)
      for (const kv of ['key', 'value']) {
        cacheI.set(`past.${l}.${kv}`, empty('i8', DH));
        cacheI.set(`past.${l}.${kv}_scale`, empty('f32', 1));
        cacheF.set(`past.${l}.${kv}`, empty('f32', DH));
      }
    const keepI = [...cacheI.keys()].map((n) => `present.${n.slice(5)}`);
    const keepF = [...cacheF.keys()].map((n) => `present.${n.slice(5)}`);
    const logits: { int8: Tensor64; f32: Tensor64 }[] = [];
    let bytesI = 0;
    let bytesF = 0;
    try {
      for (const tokens of calls) {
        const ri = await si.run(new Map([['tokens', tokens], ...cacheI]), { keepOnDevice: keepI });
        const rf = await sf.run(new Map([['tokens', tokens], ...cacheF]), { keepOnDevice: keepF });
        const li = ri.outputs.get('logits');
        const lf = rf.outputs.get('logits');
        if (li === undefined || lf === undefined) throw new Error('no logits');
        logits.push({ int8: asTensor(li, 'f32'), f32: asTensor(lf, 'f32') });
        for (const t of [...cacheI.values(), ...cacheF.values()]) if ('buffer' in t) t.buffer.destroy();
        cacheI = pastOf(ri.deviceOutputs);
        cacheF = pastOf(rf.deviceOutputs);
        bytesI = [...ri.deviceOutputs.values()].reduce((a, t) => a + t.buffer.size, 0);
        bytesF = [...rf.deviceOutputs.values()].reduce((a, t) => a + t.buffer.size, 0);
      }
    } finally {
      for (const t of [...cacheI.values(), ...cacheF.values()]) if ('buffer' in t) t.buffer.destroy();
      si.dispose();
      sf.dispose();
    }
    return { logits, bytesI, bytesF };
  }

  it('dh 64: the kept cache (i8 values + f32 scales) takes 68/256 of the f32 cache on the GPU', { timeout: 600_000 }, async () => {
    const cfg = { layers: 2, d: 256, heads: 4, vocab: 256, ctx: 64 }; // dh = 64
    const [B, H, DH, L, T0] = [2, 4, 64, 2, 12];
    const ds: Diagnostic[] = [];
    const weights = randomWeights(neededTensors(checked(F32, cfg)), 31, new Map(), ds);
    expect(ds).toEqual([]);
    const tokens = (T: number, step: number): HostTensor => ({ dtype: 'i32', shape: [B, T], data: Array.from({ length: B * T }, (_, i) => (37 * (i + 1) + 11 * step) % 256) });
    const { logits, bytesI, bytesF } = await decodeBoth(cfg, weights, [tokens(T0, 0), tokens(1, 1)], { B, H, DH, L });
    for (const l of logits) expect([...l.int8.data].every(Number.isFinite)).toBe(true);
    // P + T = 13 tokens: f32 2 (K, V) * L * B * H * 13 rows of 64 * 4 bytes; int8 64 + 4 bytes a row.
    const rows = 2 * L * B * H * (T0 + 1);
    expect(bytesF).toBe(rows * DH * 4);
    expect(bytesI).toBe(rows * (DH + 4));
    const ratio = bytesI / bytesF;
    console.log(`int8 KV cache at dh 64, ${T0 + 1} tokens: ${bytesI} B vs f32 ${bytesF} B = ${ratio.toFixed(4)} (${(1 / ratio).toFixed(2)}x smaller)`);
    expect(ratio).toBeCloseTo(68 / 256, 10);
  });

  it.skipIf(noTorch)('dh 64: logits of the int8 cache vs the f32 cache over a prefill and 4 decode steps, as in float64', { timeout: 600_000 }, async () => {
    const [B, H, DH, L, T0, STEPS] = [2, 4, 64, 2, 12, 4];
    const cfg = { layers: L, d: H * DH, heads: H, vocab: 256, ctx: 64 };
    const dir = runOracle('kv_int8_oracle.py', ['--seed', '3', '--layers', String(L), '--d', String(H * DH), '--heads', String(H), '--vocab', '256', '--ctx', '64', '--batch', String(B), '--seq', String(T0), '--steps', String(STEPS)]);
    const meta = JSON.parse(readFileSync(`${dir}/meta.json`, 'utf8')) as { f32_cache_logits_error: number[] };
    const calls = [readOracle(dir).inputs, ...Array.from({ length: STEPS }, (_, i) => readOracle(dir, `decode${i}_`).inputs)].map((m) => m.get('tokens') as Tensor64);
    const { logits } = await decodeBoth(cfg, readOracle(dir).weights, calls, { B, H, DH, L });
    const errors = logits.map((l) => oracleError(l.int8, l.f32));
    console.log(`int8 vs f32-cache logits, max |int8 - f32| / max |f32| per call (prefill T=${T0}, then decode), WebGPU: ${errors.map((e) => e.toExponential(2)).join(', ')}; float64 (oracle): ${meta.f32_cache_logits_error.map((e) => e.toExponential(2)).join(', ')}`);
    expect(errors).toHaveLength(STEPS + 1);
    errors.forEach((e, i) => {
      const want = meta.f32_cache_logits_error[i] ?? NaN;
      expect(e, `call ${i}`).toBeGreaterThan(1e-4); // the quantization shows
      expect(Math.abs(e - want), `call ${i}: WebGPU ${e} vs float64 ${want}`).toBeLessThanOrEqual(0.02 * want);
    });
  });

  it('generate: the cache pairs include the scales, kept on the GPU between steps; logits follow the interpreter', { timeout: 600_000 }, async () => {
    const cfg = { layers: 2, d: 32, heads: 2, vocab: 50, ctx: 16 };
    const g = checked(INT8, cfg);
    const weights = randomWeights(neededTensors(g), 3, new Map(), []);
    const plan = compilePlan(fused(g), { target: targetLimitsOf(dev) });
    const shape = describeModel(plan);
    expect(shape.cache.map((c) => c.past).sort()).toEqual(['key', 'key_scale', 'value', 'value_scale'].flatMap((s) => [0, 1].map((l) => `past.${l}.${s}`)).sort());
    const model = await createLoadedModel(dev, plan, { name: plan.model, ...shape, context: 16 }, writeSafetensors(weights), { warmUp: false });
    const prompt = [5, 17, 3];
    const stepLogits: Float32Array[] = [];
    const got = await model.generate(prompt, { maxNewTokens: 5, temperature: 0, onLogits: (l) => void stepLogits.push(Float32Array.from(l)) });
    model.dispose();
    // The interpreter, step by step on its own cache (i8 values and scales as host tensors).
    const empty = (last: number, dtype: 'i8' | 'f32'): Tensor64 => ({ dtype, shape: [1, 2, 0, last], data: new Float64Array(0) });
    let cache = new Map<string, Tensor64>();
    for (let l = 0; l < 2; l++) for (const kv of ['key', 'value']) cache.set(`past.${l}.${kv}`, empty(16, 'i8')).set(`past.${l}.${kv}_scale`, empty(1, 'f32'));
    let tokens = prompt;
    for (let step = 0; step < 5; step++) {
      const r = interpret(g, { inputs: new Map([['tokens', { dtype: 'i32', shape: [1, tokens.length], data: Float64Array.from(tokens) }], ...cache]), weights });
      const logits = r.outputs.get('logits')?.data ?? new Float64Array(0);
      const row = logits.subarray(logits.length - 50);
      const scale = Math.max(...Array.from(row, Math.abs));
      const diff = Math.max(...Array.from(row, (x, i) => Math.abs(x - (stepLogits[step]?.[i] ?? NaN))));
      expect(diff / scale, `step ${step}`).toBeLessThan(1e-4);
      expect(got.tokens[step]).toBe(Array.from(row).indexOf(Math.max(...row)));
      cache = pastOf(r.outputs);
      tokens = [got.tokens[step] ?? -1];
    }
  });

  it('no NaN: all-zero K/V rows (scale qmin) and a fully masked query row, against the interpreter', { timeout: 600_000 }, async () => {
    const cfg = { layers: 1, d: 32, heads: 2, vocab: 64, ctx: 32 };
    // Row qi = 0 sees no key at all; the softmax of an all -inf row is zeros (docs/language.md).
    const masked = (src: string): string => src.replace('causal = grid[T, P + T](qi, ki) => ki <= qi + P', 'causal = grid[T, P + T](qi, ki) => ki <= qi + P && qi > 0');
    for (const [what, edit] of [['zero K/V rows', (s: string) => s], ['a fully masked row', masked]] as const) {
      const g = checked(INT8, cfg, edit);
      const ds: Diagnostic[] = [];
      const weights = randomWeights(neededTensors(g), 41, new Map(), ds);
      expect(ds).toEqual([]);
      if (what === 'zero K/V rows') {
        // K and V columns of the QKV projection and their bias: every new K/V row is 0.
        for (const name of ['h.0.attn.c_attn.weight', 'h.0.attn.c_attn.bias']) {
          const t = weights.get(name) as Tensor64;
          const cols = t.shape[t.shape.length - 1] ?? 0;
          t.data.forEach((_, i) => {
            if (i % cols >= 32) t.data[i] = 0;
          });
        }
      }
      const [B, T, P] = [2, 5, 3];
      const inputs = new Map<string, Tensor64>([['tokens', { dtype: 'i32', shape: [B, T], data: Float64Array.from({ length: B * T }, (_, i) => (i * 7) % 64) }]]);
      for (const kv of ['key', 'value']) {
        const zero = what === 'zero K/V rows';
        inputs.set(`past.0.${kv}`, { dtype: 'i8', shape: [B, 2, P, 16], data: Float64Array.from({ length: B * 2 * P * 16 }, (_, i) => (zero ? 0 : ((i * 37) % 255) - 127)) });
        inputs.set(`past.0.${kv}_scale`, { dtype: 'f32', shape: [B, 2, P, 1], data: Float64Array.from({ length: B * 2 * P }, (_, i) => (zero ? 1e-6 : 0.01 + 0.001 * i)) });
      }
      const want = interpret(g, { inputs, weights }).outputs;
      const s = await session(g, weights);
      try {
        const got = (await s.run(inputs)).outputs;
        for (const [name, w] of want) {
          const t = got.get(name);
          if (t === undefined) throw new Error(`no output ${name}`);
          expect([...t.data].every(Number.isFinite), `${what}: ${name} is finite`).toBe(true);
          const err = oracleError(asTensor(t, w.dtype), w);
          console.log(`${what}: ${name} max rel error vs interpreter ${err.toExponential(2)}`);
          if (t.dtype === 'i8') expect(err, `${what}: ${name}`).toBe(0);
          else expect(err, `${what}: ${name}`).toBeLessThanOrEqual(1e-4);
        }
        if (what === 'zero K/V rows') {
          const ks = got.get('present.0.key_scale');
          expect([...(ks?.data ?? [])].slice(0, 1)).toEqual([Math.fround(1e-6)]);
          expect([...(got.get('present.0.key')?.data ?? [1])].every((x) => x === 0)).toBe(true);
        }
      } finally {
        s.dispose();
      }
    }
  });
});
