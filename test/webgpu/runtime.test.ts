// The WebGPU runtime (src/runtime) on hand-written plans, on lavapipe in CI: results against values
// computed here from first principles, pipeline reuse across dims, liveness-based memory reuse,
// zero-size tensors, and refusals (bad inputs, oversize bindings) before any dispatch.
import { describe, expect, it } from 'vitest';
import { acquireDevice, isLavapipe } from '../../src/runtime/device.js';
import { createSession, pipelineCreations, type Session } from '../../src/runtime/session.js';
import { RuntimeError } from '../../src/runtime/errors.js';
import { addBiasPlan, affineWgsl, buffer, c, chainPlan, d, deviceAndSessions, gatherPlan, halfPlan, matmulPlan, mul, plan, seeded } from './helpers.js';

/** This file's device and the sessions its tests open (disposed after the file). */
const gpu = deviceAndSessions();

async function session(p: Parameters<typeof createSession>[1], opts?: Parameters<typeof createSession>[2]): Promise<Session> {
  const s = await createSession(gpu.dev, p, opts);
  gpu.sessions.push(s);
  return s;
}

function maxRel(got: ArrayLike<number>, want: ArrayLike<number>): number {
  expect(got.length).toBe(want.length);
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    const g = got[i] ?? NaN;
    const w = want[i] ?? NaN;
    worst = Math.max(worst, Math.abs(g - w) / Math.max(Math.abs(w), 1e-6));
  }
  return worst;
}

describe('webgpu runtime: results', () => {
  it('adds with broadcasting over a weight [5] and an input [T,1]', async () => {
    const s = await session(addBiasPlan());
    const w = [0.5, -1, 2, 100, -0.25];
    s.loadWeights({ w: { dtype: 'f32', shape: [5], data: w } });
    for (const [B, T] of [
      [1, 1],
      [2, 7],
      [3, 33],
    ] as const) {
      const a = seeded(B * T * 5, 7 + T);
      const col = seeded(T, 99 + T);
      const r = await s.run({ a: { shape: [B, T, 5], data: a }, col: { shape: [T, 1], data: col } });
      const out = r.outputs.get('out');
      expect(out?.shape).toEqual([B, T, 5]);
      // The kernel's two f32 additions in the same order, each rounded to nearest (IEEE): bit-exact.
      const f = Math.fround;
      const want = Array.from(a, (v, i) => f(f(v + f(w[i % 5] ?? 0)) + (col[Math.floor(i / 5) % T] ?? 0)));
      expect(Array.from(out?.data ?? [])).toEqual(want);
      expect(r.dims).toEqual(new Map([['B', B], ['T', T]]));
    }
  });

  it('multiplies with a tiled matmul on awkward shapes', async () => {
    const s = await session(matmulPlan());
    for (const [M, K, N] of [
      [1, 1, 1],
      [7, 33, 1],
      [33, 7, 129],
      [129, 40, 17],
    ] as const) {
      const a = seeded(M * K, M);
      const b = seeded(K * N, N + 1000);
      const r = await s.run({ a: { shape: [M, K], data: a }, b: { shape: [K, N], data: b } });
      const want = new Float64Array(M * N);
      for (let i = 0; i < M; i++)
        for (let j = 0; j < N; j++) {
          let acc = 0;
          for (let k = 0; k < K; k++) acc += (a[i * K + k] ?? 0) * (b[k * N + j] ?? 0);
          want[i * N + j] = acc;
        }
      const out = r.outputs.get('c');
      expect(out?.shape).toEqual([M, N]);
      // fp32 accumulation of K <= 40 products of values in [-1, 1): absolute error below 1e-5.
      let worstAbs = 0;
      for (let i = 0; i < want.length; i++) worstAbs = Math.max(worstAbs, Math.abs((out?.data[i] ?? NaN) - (want[i] ?? 0)));
      expect(worstAbs).toBeLessThan(1e-5);
    }
  });

  it('gathers rows with i32 token ids', async () => {
    const s = await session(gatherPlan(), { inputRanges: { tokens: { min: 0, maxExclusive: 11 } } });
    const table = Array.from({ length: 33 }, (_, i) => i * 0.5 - 3);
    const loaded = s.loadWeights(new Map([['table', { dtype: 'f32' as const, shape: [11, 3], data: table }], ['extra', { shape: [1], data: [0] }]]));
    expect(loaded).toEqual({ loaded: ['table'], unused: ['extra'] });
    const tokens = [10, 0, 3, 3, 7, 1, 2];
    const r = await s.run({ tokens: { dtype: 'i32', shape: [1, 7], data: Int32Array.from(tokens) } });
    const want = tokens.flatMap((t) => [0, 1, 2].map((j) => table[t * 3 + j] ?? NaN));
    expect(Array.from(r.outputs.get('out')?.data ?? [])).toEqual(want);
  });

  it('stores f16 with round-to-nearest-even and computes in f16', async () => {
    const s = await session(halfPlan());
    const x = [1 / 3, 0.1, 65504, -2.5, 3e-5];
    const r = await s.run({ x: { shape: [5], data: x } });
    // f16(1/3) = 0x3555 = 0.333251953125, f16(0.1) = 0x2E66 = 0.0999755859375 (IEEE 754 binary16);
    // 2 * 65504 overflows to inf; 3e-5 is subnormal: round(3e-5 * 2^24) = 503 units of 2^-24.
    expect(Array.from(r.outputs.get('y')?.data ?? [])).toEqual([0.66650390625, 0.199951171875, Infinity, -5, 2 * 503 * 2 ** -24]);
    expect(r.outputs.get('y')?.data).toBeInstanceOf(Float32Array);
  });
});

describe('webgpu runtime: resources', () => {
  it('reuses the same pipelines when T changes', async () => {
    const p = addBiasPlan();
    const before = pipelineCreations(gpu.dev.device);
    const s = await session(p);
    const created = pipelineCreations(gpu.dev.device);
    expect(created - before).toBe(s.stats.pipelinesCreated);
    s.loadWeights({ w: { shape: [5], data: [1, 2, 3, 4, 5] } });
    for (const T of [1, 7, 33, 129]) {
      const r = await s.run({ a: { shape: [2, T, 5], data: new Float32Array(10 * T) }, col: { shape: [T, 1], data: new Float32Array(T) } });
      expect(r.outputs.get('out')?.data[4]).toBe(5);
    }
    expect(pipelineCreations(gpu.dev.device)).toBe(created);
    // A second session on the same plan finds the pipeline in the device cache.
    const s2 = await session(p);
    expect(s2.stats).toMatchObject({ pipelinesCreated: 0, pipelinesReused: 1 });
    expect(pipelineCreations(gpu.dev.device)).toBe(created);
    // The same kernel compiled from another model differs only in its header comments (name,
    // source location): it is found in the cache too.
    const renamed = { ...p, kernels: p.kernels.map((k) => ({ ...k, source: { ...k.source, wgsl: `// kernel other_model_add\n// from other.tfx:3:1\n${k.source.wgsl}` } })) };
    const s3 = await session(renamed);
    expect(s3.stats).toMatchObject({ pipelinesCreated: 0, pipelinesReused: 1 });
    expect(pipelineCreations(gpu.dev.device)).toBe(created);
  });

  it('reuses temp memory by liveness along a chain', async () => {
    const links = 6; // 5 temps, each live for two consecutive steps
    const s = await session(chainPlan(links));
    const N = 1000;
    const x = seeded(N, 3);
    const r = await s.run({ x: { shape: [N], data: x } });
    let want = Array.from(x, Number);
    for (let i = 0; i < links; i++) want = want.map((v) => Math.fround(2 * v + 1));
    expect(maxRel(r.outputs.get('y')?.data ?? [], want)).toBeLessThan(1e-6);
    // t_i is written at step i-1 and read at step i: at most two temps are live at once.
    expect(r.memory.tempBytesWithoutReuse).toBe(5 * N * 4);
    expect(r.memory.tempBytes).toBe(2 * N * 4);
    expect(r.memory.peakBytes).toBe(r.memory.weightBytes + r.memory.ioBytes + r.memory.tempBytes + r.memory.uniformBytes);
    expect(s.stats.lastDispatches).toBe(links);
  });

  it('keeps each step\'s bind group while its buffers stay the same (decode steps), and rebuilds it when they change', async () => {
    const links = 6;
    const s = await session(chainPlan(links));
    const run = async (N: number, seed: number): Promise<void> => {
      const x = seeded(N, seed);
      const r = await s.run({ x: { shape: [N], data: x } });
      let want = Array.from(x, Number);
      for (let i = 0; i < links; i++) want = want.map((v) => Math.fround(2 * v + 1));
      expect(maxRel(r.outputs.get('y')?.data ?? [], want)).toBeLessThan(1e-6);
    };
    await run(1000, 3);
    expect(s.stats).toMatchObject({ lastBindGroupsCreated: links, lastBindGroupsReused: 0 });
    // Same dims, new values: every buffer (inputs, temps, uniforms) is the same: all reused.
    await run(1000, 4);
    expect(s.stats).toMatchObject({ lastBindGroupsCreated: 0, lastBindGroupsReused: links });
    // Larger dims: the temps grow (new buffers), so the groups that bind them are made anew.
    await run(5000, 5);
    expect(s.stats.lastBindGroupsCreated).toBeGreaterThan(0);
    expect(s.stats.lastBindGroupsCreated + s.stats.lastBindGroupsReused).toBe(links);
    await run(5000, 6);
    expect(s.stats).toMatchObject({ lastBindGroupsCreated: 0, lastBindGroupsReused: links });
  });

  it('runs zero-size inputs (T = 0) and returns empty outputs', async () => {
    const s = await session(addBiasPlan());
    s.loadWeights({ w: { shape: [5], data: [1, 2, 3, 4, 5] } });
    const r = await s.run({ a: { shape: [2, 0, 5], data: [] }, col: { shape: [0, 1], data: [] } });
    const out = r.outputs.get('out');
    expect(out?.shape).toEqual([2, 0, 5]);
    expect(out?.data.length).toBe(0);
    expect(s.stats.lastDispatches).toBe(0); // an empty grid is not dispatched
  });

  it('reports per-step GPU time with timestamp queries', async () => {
    const s = await session(chainPlan(3));
    const r = await s.run({ x: { shape: [4096], data: new Float32Array(4096) } }, { timing: true });
    if (!gpu.dev.features.has('timestamp-query')) {
      expect(r.warnings.join()).toMatch(/timestamp-query/);
      return;
    }
    expect(r.timing?.map((t) => t.kernel)).toEqual(['affine', 'affine', 'affine']);
    for (const t of r.timing ?? []) expect(t.ns).toBeGreaterThanOrEqual(0);
    expect(r.outputs.get('y')?.data[0]).toBe(7); // 0 -> 1 -> 3 -> 7
  });
});

describe('webgpu runtime: refusals before any dispatch', () => {
  it('refuses a temp binding over the 128 MiB storage limit with a clear error', async () => {
    // The temps hold N*N f32: at N = 6000 that is 144,000,000 bytes > 134,217,728.
    const s = await session(chainPlan(2, mul(d('N'), d('N'))));
    const err = await s.run({ x: { shape: [6000], data: new Float32Array(6000) } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RuntimeError);
    expect((err as RuntimeError).kind).toBe('limit');
    expect((err as RuntimeError).message).toMatch(/temp buffer 1 .*144000000 bytes.*N=6000.*maxStorageBufferBindingSize/);
    expect(s.stats.runs).toBe(0);
    // The same plan at a small N runs.
    const ok = await s.run({ x: { shape: [10], data: new Float32Array(10) } });
    expect(ok.outputs.get('y')?.data[0]).toBe(3);
  });

  it('refuses a constant-size weight over the limit when the session is created', async () => {
    const p = chainPlan(1);
    const big = plan(
      'big',
      ['N'],
      [...p.buffers, buffer(9, 'weight', 'f32', [c((1 << 15) + 1), c(1 << 10)], { name: 'huge' })],
      p.kernels,
      [{ kernel: 'affine', buffers: [0, 1] }],
      p.outputs,
    );
    await expect(createSession(gpu.dev, big)).rejects.toThrow(/weight 'huge'.*134221824 bytes.*above.*128 MiB/);
  });

  it('validates inputs: names, rank, dims, dtype, values, ranges', async () => {
    const s = await session(gatherPlan(), { inputRanges: { tokens: { min: 0, maxExclusive: 11 } } });
    const codeOf = async (f: () => Promise<unknown>): Promise<string | undefined> => {
      const e = await f().catch((x: unknown) => x);
      return e instanceof RuntimeError ? `${e.code ?? ''} ${e.message}` : `no error: ${String(e)}`;
    };
    expect(await codeOf(() => s.run({ tokens: { shape: [1, 2], data: [1, 2] } }))).toMatch(/TFC302 weight\(s\) not loaded: table/);
    s.loadWeights({ table: { shape: [11, 3], data: new Float32Array(33) } });
    expect(await codeOf(() => s.run({}))).toMatch(/TFC302 input 'tokens' is missing/);
    expect(await codeOf(() => s.run({ Tokens: { shape: [1, 2], data: [1, 2] } }))).toMatch(/TFC302 'Tokens' .*did you mean 'tokens'/);
    expect(await codeOf(() => s.run({ tokens: { shape: [2], data: [1, 2] } }))).toMatch(/TFC303 input 'tokens' has rank 1/);
    expect(await codeOf(() => s.run({ tokens: { dtype: 'f32', shape: [1, 2], data: [1, 2] } }))).toMatch(/TFC303 input 'tokens' is f32, the model needs i32/);
    expect(await codeOf(() => s.run({ tokens: { shape: [1, 2], data: [1, 2.5] } }))).toMatch(/TFC303 .*element 1 is 2.5, not an int32/);
    expect(await codeOf(() => s.run({ tokens: { shape: [1, 3], data: [1, 11, 0] } }))).toMatch(/TFC309 input 'tokens' element 1 is 11, outside \[0, 11\)/);
    expect(await codeOf(() => s.run({ tokens: { shape: [1, 2], data: [1, 2] } }, { dims: { T: 3 } }))).toMatch(/TFC307 inputs disagree about dim T/);
    expect(s.stats.runs).toBe(0);
    expect(() => s.loadWeights({ table: { shape: [3, 11], data: new Float32Array(33) } })).toThrow(/weight 'table' has shape \[3,11\], the model needs \[11,3\]/);
  });

  it('says which dim no input binds', async () => {
    const p = chainPlan(1);
    const s = await session({ ...p, dims: ['N', 'P'] });
    await expect(s.run({ x: { shape: [4], data: [1, 2, 3, 4] } })).rejects.toThrow(/dim P has no value/);
    const r = await s.run({ x: { shape: [4], data: [1, 2, 3, 4] } }, { dims: { P: 9 } });
    expect(Array.from(r.outputs.get('y')?.data ?? [])).toEqual([3, 5, 7, 9]);
  });
});

describe('webgpu runtime: failures end the run', () => {
  it('rejects a run on a lost device instead of hanging', async () => {
    const own = await acquireDevice();
    const s = await createSession(own, chainPlan(2));
    own.device.destroy();
    const info = await own.lost;
    expect(info.reason).toBe('destroyed');
    await expect(s.run({ x: { shape: [4], data: [1, 2, 3, 4] } })).rejects.toThrow(/device was lost \(destroyed\)/);
  });

  it('names the kernel and the WGSL line when the shader compiler rejects a kernel', async () => {
    const p = chainPlan(1);
    const [k] = p.kernels;
    if (k === undefined) throw new Error('no kernel');
    const broken = { ...p, kernels: [{ ...k, source: { wgsl: affineWgsl.replace('2.0f * x[gid.x]', '2.0f * undefined_name') } }] };
    const err = await createSession(gpu.dev, broken).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RuntimeError);
    expect((err as RuntimeError).kind).toBe('plan');
    expect((err as RuntimeError).message).toMatch(/kernel affine \(from affine.test:1:1\) was rejected[\s\S]*affine.wgsl:8:\d+: .*undefined_name/);
  });
});

describe('webgpu runtime: target limits', () => {
  it('reads the lowering limits from the acquired device (lavapipe: 32 KiB, 1024 threads, subgroups of 8, f16)', async () => {
    const { targetLimitsOf } = await import('../../src/runtime/target.js');
    const t = targetLimitsOf(gpu.dev);
    expect(t.maxWorkgroupStorageBytes).toBe(gpu.dev.limits.maxComputeWorkgroupStorageSize);
    expect(t.maxInvocationsPerWorkgroup).toBe(gpu.dev.limits.maxComputeInvocationsPerWorkgroup);
    if (isLavapipe(gpu.dev.adapterInfo)) {
      const { lavapipeLimits } = await import('../../src/kernel/schedule/schedule.js');
      expect({ ...t, name: lavapipeLimits.name }).toEqual(lavapipeLimits);
    }
  });
});
