// fused_attention on WebGPU (lavapipe) against the float64 interpreter: every variant of the
// contract (docs/passes.md "Fused attention"), the prefill kernel at T in {17, 200, 1000} and the split-K
// decode pair at T = 1, plus the plan's shape: one kernel per path, no T x S buffer.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DiagnosticSink } from '../../src/diag/diagnostic.js';
import type { Graph } from '../../src/graph/ir.js';
import { parseGraph } from '../../src/graph/parse.js';
import { interpret } from '../../src/interp/interpret.js';
import { makeTensor, type Tensor64 } from '../../src/base/tensor.js';
import { compilePlan } from '../../src/compile/plan.js';
import type { AttentionSchedule } from '../../src/kernel/attention/schedule.js';
import { evalCondition, evalSize, type Plan } from '../../src/kernel/plan/plan.js';
import { chooseSchedule, lavapipeLimits } from '../../src/kernel/schedule/schedule.js';
import type { AcquiredDevice } from '../../src/runtime/device.js';
import { createSession, type Session } from '../../src/runtime/session.js';
import { relError } from '../helpers/tensors.js';
import { seeded, testDevice } from './helpers.js';

let dev: AcquiredDevice;
beforeAll(async () => {
  dev = await testDevice();
});

// Small tiles so that T = 17 already spans several query and key tiles (and compiles fast on
// lavapipe); one case below uses the tiles chosen from lavapipe's limits.
const small: AttentionSchedule = { tileRows: 8, tileCols: 8, lanes: 8, useSubgroups: true, splits: 4, decodeMaxT: 1 };

function graphOf(body: string, dims = 'B, T'): Graph {
  const sink = new DiagnosticSink();
  const g = parseGraph(`graph attn(${dims}) {\n${body}\n}`, 'attention.ir', sink);
  expect(sink.items.map((d) => d.message)).toEqual([]);
  if (g === undefined) throw new Error('no graph');
  return g;
}

/** q, k, v inputs: q [B,hq,T,dk], k and v [B,hkv,kv,dk] (kv = T or S). */
function qkv(hq: number, hkv: number, kv = 'T', dk = 16): string {
  return [
    `  %0 = input {name="q"} : f32[B,${hq},T,${dk}]`,
    `  %1 = input {name="k"} : f32[B,${hkv},${kv},${dk}]`,
    `  %2 = input {name="v"} : f32[B,${hkv},${kv},${dk}]`,
  ].join('\n');
}

function compile(g: Graph, attention: AttentionSchedule | undefined): Plan {
  const base = chooseSchedule(lavapipeLimits);
  return compilePlan(g, { target: lavapipeLimits, schedule: attention === undefined ? base : { ...base, attention } });
}

interface Feed {
  readonly shape: (T: number, S: number) => number[];
  readonly dtype?: 'f32' | 'i32';
  /** Values from the element index (default: seeded in [-1, 1)). */
  readonly values?: (n: number, seed: number, T: number) => number[];
}

interface Case {
  readonly name: string;
  readonly ir: string;
  readonly dims?: string;
  readonly feeds: Record<string, Feed>;
  readonly Ts: readonly number[];
  readonly S?: (T: number) => number;
  readonly B?: number;
  readonly schedule?: AttentionSchedule | undefined;
  /** Extra checks on the outputs (e.g. zero rows). */
  readonly check?: (out: Float32Array | Float64Array | ArrayLike<number>, T: number) => void;
}

const qkvFeeds = (hq: number, hkv: number, B = 1, dk = 16): Record<string, Feed> => ({
  q: { shape: (T) => [B, hq, T, dk] },
  k: { shape: (_T, S) => [B, hkv, S, dk] },
  v: { shape: (_T, S) => [B, hkv, S, dk] },
});

const attn = (operands: string, attrs: string, hq = 2, dv = 16): string => `  %9 = fused_attention %0, %1, %2${operands} {${attrs}} : f32[B,${hq},T,${dv}]\n  output "o" = %9`;

const cases: Case[] = [
  { name: 'no mask', ir: `${qkv(2, 2)}\n${attn('', 'scale=0.25')}`, feeds: qkvFeeds(2, 2, 2), B: 2, Ts: [1, 17, 200] },
  { name: 'causal', ir: `${qkv(2, 2)}\n${attn('', 'mask=(b, h, q, k) => le(k, q), scale=0.25')}`, feeds: qkvFeeds(2, 2), Ts: [1, 17, 200] },
  {
    // T = 300 takes the long-prompt step (1024-row workgroups, Q in registers), T <= 256 the short one.
    name: 'causal, tiles from lavapipe limits',
    ir: `${qkv(2, 2, 'T', 64)}\n${attn('', 'mask=(b, h, q, k) => le(k, q), scale=0.125', 2, 64)}`,
    feeds: qkvFeeds(2, 2, 1, 64),
    Ts: [17, 200, 300],
    schedule: undefined,
  },
  {
    name: 'sliding window of 5',
    ir: `${qkv(2, 2)}\n${attn('', 'mask=(b, h, q, k) => and(le(k, q), lt(sub(q, k), 5)), scale=0.25')}`,
    feeds: qkvFeeds(2, 2),
    Ts: [1, 17, 200],
  },
  {
    name: 'prefix-LM (prefix 6)',
    ir: `${qkv(2, 2)}\n${attn('', 'mask=(b, h, q, k) => or(le(k, q), lt(k, 6)), scale=0.25')}`,
    feeds: qkvFeeds(2, 2),
    Ts: [1, 17, 200],
  },
  {
    name: 'document mask (ids from a tensor)',
    ir: `${qkv(2, 2)}\n  %3 = input {name="doc"} : i32[B,T]\n${attn(', %3', 'mask=(b, h, q, k) => and(le(k, q), eq(read(3, b, q), read(3, b, k))), scale=0.25')}`,
    feeds: { ...qkvFeeds(2, 2, 2), doc: { shape: (T) => [2, T], dtype: 'i32', values: (n) => Array.from({ length: n }, (_, i) => Math.floor((i % Math.max(n / 2, 1)) / 7) + (i < n / 2 ? 0 : 1)) } },
    B: 2,
    Ts: [1, 17, 200],
  },
  // Padding (varlen): per-batch lengths [0, 5, T]; batch row 0 has no keys, so all its rows are 0.
  // The block-sparsity analysis loads len[b] once per workgroup (bounds and tile classes).
  ...(['padding', 'causal + padding'] as const).map((kind): Case => ({
    name: `varlen ${kind} (lengths 0, 5, T)`,
    ir: `${qkv(2, 2)}\n  %3 = input {name="len"} : i32[B]\n${attn(', %3', `mask=(b, h, q, k) => ${kind === 'padding' ? 'lt(k, read(3, b))' : 'and(le(k, q), lt(k, read(3, b)))'}, scale=0.25`)}`,
    feeds: { ...qkvFeeds(2, 2, 3), len: { shape: () => [3], dtype: 'i32', values: (_n, _seed, T) => [0, 5, T] } },
    B: 3,
    Ts: [1, 17, 200],
    check: (out, T) => {
      // Batch 0 (length 0): every row of every head is fully masked, exactly 0. Batch 2 (length T)
      // and every other value: finite.
      for (let i = 0; i < 2 * T * 16; i++) expect(out[i]).toBe(0);
      for (let i = 0; i < out.length; i++) expect(Number.isFinite(out[i])).toBe(true);
    },
  })),
  {
    name: 'ALiBi',
    ir: `${qkv(2, 2)}\n  %3 = input {name="slope"} : f32[2]\n${attn(', %3', 'mask=(b, h, q, k) => le(k, q), scale=0.25, score=(b, h, q, k) => add(score(), mul(read(3, h), cast:f32(sub(k, q))))')}`,
    feeds: { ...qkvFeeds(2, 2), slope: { shape: () => [2], values: () => [0.5, 0.0625] } },
    Ts: [1, 17, 200],
  },
  {
    name: 'soft-cap',
    ir: `${qkv(2, 2)}\n${attn('', 'mask=(b, h, q, k) => le(k, q), scale=4.0, score=(b, h, q, k) => mul(tanh(div(score(), 5.0)), 5.0)')}`,
    feeds: qkvFeeds(2, 2),
    Ts: [1, 17, 200],
  },
  {
    name: 'relative bias from a table',
    ir: `${qkv(2, 2)}\n  %3 = input {name="rel"} : f32[2,32]\n${attn(', %3', 'mask=(b, h, q, k) => le(k, q), scale=0.25, score=(b, h, q, k) => add(score(), read(3, h, min(max(sub(q, k), 0), 31)))')}`,
    feeds: { ...qkvFeeds(2, 2), rel: { shape: () => [2, 32] } },
    Ts: [1, 17, 200],
  },
  { name: 'GQA (4 query heads, 2 KV heads)', ir: `${qkv(4, 2)}\n${attn('', 'mask=(b, h, q, k) => le(k, q), scale=0.25', 4)}`, feeds: qkvFeeds(4, 2), Ts: [1, 17, 200] },
  { name: 'MQA (4 query heads, 1 KV head)', ir: `${qkv(4, 1)}\n${attn('', 'mask=(b, h, q, k) => le(k, q), scale=0.25', 4)}`, feeds: qkvFeeds(4, 1), Ts: [1, 17, 200] },
  {
    name: 'cross-attention (T != S)',
    ir: `${qkv(2, 2, 'S')}\n${attn('', 'scale=0.25')}`,
    dims: 'B, T, S',
    feeds: qkvFeeds(2, 2),
    Ts: [1, 17, 200],
    S: (T) => 2 * T + 5,
  },
  {
    name: 'KV cache: causal over S = P + T (decode when T = 1)',
    ir: `${qkv(2, 2, 'S')}\n${attn('', 'mask=(b, h, q, k) => le(k, add(q, dim(S-T))), scale=0.25')}`,
    dims: 'B, T, S',
    feeds: qkvFeeds(2, 2),
    Ts: [1, 17, 200],
    S: (T) => T + 40,
  },
  {
    name: 'fully masked rows give 0',
    ir: `${qkv(2, 2)}\n${attn('', 'mask=(b, h, q, k) => and(le(k, q), ge(q, 11)), scale=0.25')}`,
    feeds: qkvFeeds(2, 2),
    Ts: [1, 17, 200],
    check: (out, T) => {
      // Rows q < 11 of every head are fully masked: exactly 0 (and no NaN anywhere).
      for (let h = 0; h < 2; h++) for (let q = 0; q < Math.min(11, T); q++) for (let j = 0; j < 16; j++) expect(out[(h * T + q) * 16 + j]).toBe(0);
    },
  },
  {
    name: 'logits of +-1e4',
    // Integer q and k: q.k is exact in f32 and reaches +-1e4, so softmax sees gaps of thousands.
    ir: `${qkv(2, 2)}\n${attn('', 'mask=(b, h, q, k) => le(k, q), scale=1.0')}`,
    feeds: {
      q: { shape: (T) => [1, 2, T, 16], values: (n, seed) => Array.from(seeded(n, seed), (x) => Math.round(x * 25)) },
      k: { shape: (_T, S) => [1, 2, S, 16], values: (n, seed) => Array.from(seeded(n, seed), (x) => Math.round(x * 25)) },
      v: { shape: (_T, S) => [1, 2, S, 16] },
    },
    Ts: [1, 17, 200],
    check: (out) => {
      for (let i = 0; i < out.length; i++) expect(Number.isFinite(out[i])).toBe(true);
    },
  },
];

// The CPU schedule's kernel (K/V read from global memory, several query rows per thread), with
// subgroup and workgroup-memory row reductions, on the variants whose indexing differs most.
const direct: AttentionSchedule = { ...small, rowsPerThread: 2, isDirect: true };
const directFold: AttentionSchedule = { ...small, useSubgroups: false, rowsPerThread: 4, isDirect: true };
// P exchanged by subgroup shuffle (no P tile): with direct K/V (no barrier per key tile) and staged.
const directShuffle: AttentionSchedule = { ...direct, shuffleP: true };
const stagedShuffle: AttentionSchedule = { ...small, rowsPerThread: 2, shuffleP: true };
// Q in private arrays, K/V staged, block sparsity per row group too (the CPU traffic-minimal
// schedule, small): 4 row groups of 2 rows, so row groups of one tile skip different key tiles.
const qInRegisters: AttentionSchedule = { ...small, rowsPerThread: 2, shuffleP: true, qInRegisters: true };
// The CPU's broadcast prefill (kernel/attention/lanes.ts; split-K decode keeps `small`): 8-row
// tiles of 8 keys with scalar loads, and 16-row tiles of 16 keys with vec4 loads of K (V's 2
// columns per lane at dv = 16 allow no vec4), on every base variant.
const lanes8: AttentionSchedule = { ...small, lanesPrefill: { tileRows: 8, tileCols: 8, lanes: 8, kVector: 1, vVector: 1 } };
const lanes16: AttentionSchedule = { ...small, lanesPrefill: { tileRows: 16, tileCols: 16, lanes: 8, kVector: 4, vVector: 1 } };
const withSchedule = (names: readonly string[], schedule: AttentionSchedule, label: string): Case[] =>
  cases.filter((c) => names.includes(c.name)).map((c) => ({ ...c, name: `${c.name} (${label})`, schedule }));
cases.push(
  ...withSchedule(['causal', 'ALiBi', 'cross-attention (T != S)', 'KV cache: causal over S = P + T (decode when T = 1)', 'fully masked rows give 0'], direct, 'direct K/V, 2 rows/thread'),
  ...withSchedule(['no mask', 'document mask (ids from a tensor)', 'GQA (4 query heads, 2 KV heads)', 'varlen padding (lengths 0, 5, T)'], directFold, 'direct K/V, 4 rows/thread, workgroup-memory reductions'),
  ...withSchedule(['causal', 'ALiBi', 'GQA (4 query heads, 2 KV heads)', 'KV cache: causal over S = P + T (decode when T = 1)', 'fully masked rows give 0', 'varlen causal + padding (lengths 0, 5, T)'], directShuffle, 'direct K/V, 2 rows/thread, P by subgroup shuffle'),
  ...withSchedule(['no mask', 'cross-attention (T != S)'], stagedShuffle, 'staged K/V, 2 rows/thread, P by subgroup shuffle'),
  ...withSchedule(
    ['no mask', 'causal', 'sliding window of 5', 'ALiBi', 'GQA (4 query heads, 2 KV heads)', 'MQA (4 query heads, 1 KV head)', 'KV cache: causal over S = P + T (decode when T = 1)', 'fully masked rows give 0', 'varlen causal + padding (lengths 0, 5, T)', 'document mask (ids from a tensor)'],
    qInRegisters,
    'Q in registers, staged K/V, per-row-group sparsity',
  ),
);
{
  const base = cases.filter((c) => c.Ts.includes(17) && !('schedule' in c)).map((c) => c.name);
  cases.push(...withSchedule(base, lanes8, 'broadcast prefill, 8x8 tiles'));
  cases.push(...withSchedule(['no mask', 'causal', 'document mask (ids from a tensor)', 'GQA (4 query heads, 2 KV heads)', 'MQA (4 query heads, 1 KV head)', 'soft-cap', 'cross-attention (T != S)', 'fully masked rows give 0'], lanes16, 'broadcast prefill, 16x16 tiles, vec4 K'));
}

// Issue 5 asks every variant at T in {1, 17, 1000}: T = 1000 with the schedule chosen from
// lavapipe's limits (the broadcast prefill, kernel/attention/lanes.ts), on every base variant above.
const baseNames = cases.filter((c) => c.Ts.includes(17) && !('schedule' in c)).map((c) => c.name);
// (the broadcast schedules above were appended with a schedule, so they are not base variants)
cases.push(...cases.filter((c) => baseNames.includes(c.name)).map((c): Case => ({ ...c, name: `${c.name} (T = 1000, lavapipe's schedule)`, Ts: [1000], schedule: undefined })));

describe('fused_attention on WebGPU vs the float64 interpreter', () => {
  const sessions: Session[] = [];
  afterAll(() => sessions.forEach((s) => s.dispose()));
  for (const c of cases) {
    it(c.name, async () => {
      const g = graphOf(c.ir, c.dims);
      const plan = compile(g, 'schedule' in c ? c.schedule : small);
      const s = await createSession(dev, plan);
      sessions.push(s);
      let seed = 3;
      for (const T of c.Ts) {
        const S = c.S?.(T) ?? T;
        const inputs = new Map<string, Tensor64>();
        for (const [name, f] of Object.entries(c.feeds)) {
          const shape = f.shape(T, S);
          const n = shape.reduce((a, b) => a * b, 1);
          const values = f.values?.(n, seed++, T) ?? Array.from(seeded(n, seed++));
          inputs.set(name, makeTensor(f.dtype ?? 'f32', shape, values));
        }
        const want = interpret(g, { inputs, weights: new Map() }).outputs.get('o');
        if (want === undefined) throw new Error('no reference output');
        const r = await s.run(inputs);
        const got = r.outputs.get('o');
        expect(got?.shape, `T=${T}`).toEqual(want.shape);
        // f32 kernel vs float64: 1e-4 relative (floor at 1e-2 of the output's scale).
        expect(relError(got?.data ?? [], want), `T=${T}, S=${S}`).toBeLessThan(1e-4);
        c.check?.(got?.data ?? [], T);
        // One kernel launch for prefill, the split and the combine for decode.
        expect(s.stats.lastDispatches, `launches at T=${T}`).toBe(T <= 1 ? 2 : 1);
      }
    }, 240_000);
  }
});

describe('the fused attention plan', () => {
  const g = graphOf(`${qkv(2, 2)}\n${attn('', 'mask=(b, h, q, k) => le(k, q), scale=0.25')}`);
  const plan = compile(g, small);

  it('has one prefill kernel (T > 1) and a split + combine pair (T <= 1)', () => {
    const active = (T: number): string[] => plan.steps.filter((s) => s.when === undefined || evalCondition(s.when, new Map([['B', 1], ['T', T]]))).map((s) => s.kernel);
    expect(active(17)).toHaveLength(1);
    expect(active(1)).toHaveLength(2);
    expect(plan.steps).toHaveLength(3);
  });

  it('with the CPU schedule chosen for lavapipe: one broadcast prefill step for every T > 1, split-K for T = 1', () => {
    const cpu = compile(g, undefined);
    const active = (T: number): string[] => cpu.steps.filter((s) => s.when === undefined || evalCondition(s.when, new Map([['B', 1], ['T', T]]))).map((s) => s.kernel);
    expect(cpu.steps).toHaveLength(3);
    expect(active(1)).toHaveLength(2); // split + combine
    expect(active(2)).toHaveLength(1);
    expect(active(5000)).toEqual(active(2));
    // The prefill workgroup is one subgroup (kernel/attention/lanes.ts): 8 lanes, no workgroup memory.
    const prefill = cpu.kernels.find((k) => k.name === active(2)[0]);
    expect(prefill?.workgroupSize).toEqual([lavapipeLimits.subgroupSize, 1, 1]);
    expect(prefill?.source.wgsl).toContain('subgroupBroadcast(');
    expect(prefill?.source.wgsl).not.toContain('var<workgroup>');
  });

  it('holds no buffer whose size grows like T x S', () => {
    for (const b of plan.buffers) {
      const at = (T: number): number => evalSize(b.elements, new Map([['B', 1], ['T', T]]));
      // Doubling T (= S) at most doubles every buffer (a T x S buffer would quadruple).
      expect(at(512) / at(256), `buffer ${b.id} (${b.kind})`).toBeLessThanOrEqual(2);
    }
  });

  it('reads Q once, K and V once per query tile, and writes O once', () => {
    const prefill = plan.kernels.find((k) => k.name === plan.steps[0]?.kernel);
    if (prefill === undefined) throw new Error('no prefill kernel');
    for (const [B, T] of [[1, 17], [2, 200], [3, 1000]] as const) {
      const dims = new Map([['B', B], ['T', T]]);
      // Hand formula, f32, H = 2 heads, d = 16, Br = 8:
      //   read  = 4*B*H*T*d (Q) + 4*B*H*ceil(T/8)*T*(d + d) (K and V per query tile)
      //   write = 4*B*H*T*d (O)
      expect(evalSize(prefill.bytesRead, dims)).toBe(4 * B * 2 * T * 16 + 4 * B * 2 * Math.ceil(T / 8) * T * 32);
      expect(evalSize(prefill.bytesWritten, dims)).toBe(4 * B * 2 * T * 16);
    }
  });
});
