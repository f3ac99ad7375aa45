// Attention numerics from a .tfx source (issue 9): fully masked rows (output 0, no NaN), logits of
// +-1e4 and T = 1, on the float64 interpreter (checked, fused and unfused graphs, against a
// float64 reference written out below) and on WebGPU (fused plan with fused_attention, unfused
// --no-fuse plan), f32 and f16. f16: q.k beyond the f16 range (|q.k| > 65504) must still give
// the right answer in the fused kernel (scores accumulate in f32, the scale comes first).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkSource } from '../../src/check/check-source.js';
import type { Graph } from '../../src/graph/ir.js';
import { interpret } from '../../src/interp/interpret.js';
import { makeTensor, type Tensor64 } from '../../src/base/tensor.js';
import { compilePlan } from '../../src/compile/plan.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext } from '../../src/passes/pass.js';
import { pipelines, unfusedPipeline } from '../../src/passes/pipeline.js';
import type { AcquiredDevice } from '../../src/runtime/device.js';
import { createSession, type Session } from '../../src/runtime/session.js';
import { targetLimitsOf } from '../../src/runtime/target.js';
import { seeded, testDevice } from './helpers.js';

process.env['XDG_RUNTIME_DIR'] ??= '/tmp';

const B = 2;
const H = 2;
const D = 16; // sqrt(16) = 4: the scale is exact, so integer inputs give exact scores in f32

// Causal attention whose query row i is fully masked when rowok[i] <= 0 (decided by an input,
// so one plan covers masked and unmasked rows at every T, T = 1 included).
const source = (dt: 'f32' | 'f16'): string => `config {
  heads = ${H}
  dh = ${D}
}
dims B, T
input q: ${dt}[B, heads, T, dh]
input k: ${dt}[B, heads, T, dh]
input v: ${dt}[B, heads, T, dh]
input rowok: i32[T]
output o: ${dt}[B, heads, T, dh]
model attn {
  s = q @ transpose(k) / sqrt(dh)
  m = grid[T, T](i, j) => j <= i && rowok[i] > 0
  o = softmax(where(m, s, -inf)) @ v
}
`;

function checked(dt: 'f32' | 'f16'): Graph {
  const r = checkSource(source(dt), 'attn.tfx', new Map());
  expect(r.diagnostics.map((d) => d.message)).toEqual([]);
  if (r.graph === undefined) throw new Error('no graph');
  return r.graph;
}
const fused = (g: Graph): Graph => runPipeline(g, pipelines.webgpu, createPassContext({ target: 'webgpu', verify: true }));
const unfused = (g: Graph): Graph => runPipeline(g, unfusedPipeline('webgpu'), createPassContext({ target: 'webgpu', verify: true }));

interface Feeds {
  readonly q: number[];
  readonly k: number[];
  readonly v: number[];
  readonly rowok: number[];
}

/** Float64 masked softmax attention, written out (max-subtracted, a fully masked row gives 0). */
function reference(f: Feeds, T: number): Float64Array {
  const out = new Float64Array(B * H * T * D);
  for (let bh = 0; bh < B * H; bh++) {
    for (let i = 0; i < T; i++) {
      if ((f.rowok[i] ?? 0) <= 0) continue;
      const s: number[] = [];
      for (let j = 0; j <= i; j++) {
        let dot = 0;
        for (let x = 0; x < D; x++) dot += (f.q[(bh * T + i) * D + x] ?? NaN) * (f.k[(bh * T + j) * D + x] ?? NaN);
        s.push(dot / Math.sqrt(D));
      }
      const m = Math.max(...s);
      const p = s.map((x) => Math.exp(x - m));
      const z = p.reduce((a, b) => a + b, 0);
      for (let x = 0; x < D; x++) {
        let acc = 0;
        for (let j = 0; j <= i; j++) acc += (p[j] ?? NaN) * (f.v[(bh * T + j) * D + x] ?? NaN);
        out[(bh * T + i) * D + x] = acc / z;
      }
    }
  }
  return out;
}

/**
 * Integer q and k built so that scaled scores reach +-big*big*D/4: row 0 of every (b, h) is
 * +-big along a fixed sign vector u, the other rows a random multiple of u plus noise in {-1,0,1}.
 */
function largeLogits(T: number, big: number, seed: number): Feeds {
  const u = Array.from({ length: D }, (_, x) => (x % 3 === 0 ? -1 : 1));
  const r = seeded(4 * B * H * T * D + 4 * B * H * T, seed);
  let at = 0;
  const next = (): number => r[at++] ?? 0;
  const rows = (first: (bh: number) => number): number[] => {
    const out: number[] = [];
    for (let bh = 0; bh < B * H; bh++) {
      for (let t = 0; t < T; t++) {
        const c = t === 0 ? first(bh) : Math.round(next() * big);
        for (let x = 0; x < D; x++) out.push(c * (u[x] ?? 1) + (t === 0 ? 0 : Math.round(next())));
      }
    }
    return out;
  };
  const q = rows(() => big);
  const k = rows((bh) => (bh % 2 === 0 ? big : -big));
  const v = Array.from(seeded(B * H * T * D, seed + 1), (x) => Math.round(x * 64) / 64);
  return { q, k, v, rowok: Array.from({ length: T }, (_, i) => (i % 4 === 2 ? 0 : 1)) };
}

function randomFeeds(T: number, seed: number): Feeds {
  const n = B * H * T * D;
  const q = Array.from(seeded(n, seed), (x) => Math.round(x * 256) / 64);
  const k = Array.from(seeded(n, seed + 1), (x) => Math.round(x * 256) / 64);
  const v = Array.from(seeded(n, seed + 2), (x) => Math.round(x * 256) / 64);
  // Rows 0 and 3 masked out; T = 1 gets one unmasked run and one masked run from the callers.
  return { q, k, v, rowok: Array.from({ length: T }, (_, i) => (i === 0 || i === 3 ? 0 : 1)) };
}

function tensors(f: Feeds, T: number, dt: 'f32' | 'f16'): Map<string, Tensor64> {
  return new Map([
    ['q', makeTensor(dt, [B, H, T, D], f.q)],
    ['k', makeTensor(dt, [B, H, T, D], f.k)],
    ['v', makeTensor(dt, [B, H, T, D], f.v)],
    ['rowok', makeTensor('i32', [T], f.rowok)],
  ]);
}

/** Largest |got - want| / max(|want|, 1e-2 * max|want|); Infinity on any non-finite value. */
function relError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let scale = 0;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i] ?? 0));
  const floor = Math.max(1e-2 * scale, 1e-30);
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    const g = got[i] ?? NaN;
    const w = want[i] ?? NaN;
    if (!Number.isFinite(g)) return Infinity;
    worst = Math.max(worst, Math.abs(g - w) / Math.max(Math.abs(w), floor));
  }
  return worst;
}

/** Masked rows are exactly 0 (not NaN, not -0 from 0 * inf tricks: compared with toBe(0) on |x|). */
function expectMaskedRowsZero(out: ArrayLike<number>, f: Feeds, T: number, what: string): void {
  for (let bh = 0; bh < B * H; bh++) {
    for (let i = 0; i < T; i++) {
      if ((f.rowok[i] ?? 0) > 0) continue;
      for (let x = 0; x < D; x++) expect(Math.abs(out[(bh * T + i) * D + x] ?? NaN), `${what}: masked row ${i}`).toBe(0);
    }
  }
}

/** max |q.k| over (b, h, i, j <= i) and the largest scaled score magnitude (for preconditions). */
function maxDot(f: Feeds, T: number): number {
  let m = 0;
  for (let bh = 0; bh < B * H; bh++)
    for (let i = 0; i < T; i++)
      for (let j = 0; j <= i; j++) {
        let dot = 0;
        for (let x = 0; x < D; x++) dot += (f.q[(bh * T + i) * D + x] ?? 0) * (f.k[(bh * T + j) * D + x] ?? 0);
        m = Math.max(m, Math.abs(dot));
      }
  return m;
}

interface Run {
  readonly name: string;
  readonly feeds: Feeds;
  readonly T: number;
}

function runsFor(big: number): Run[] {
  const out: Run[] = [];
  let seed = 11;
  for (const T of [1, 5, 13]) {
    out.push({ name: `random, T=${T}`, feeds: randomFeeds(T, seed++), T });
    out.push({ name: `large logits, T=${T}`, feeds: largeLogits(T, big, seed++), T });
  }
  // T = 1 with its only row unmasked (randomFeeds masks row 0).
  const one = randomFeeds(1, seed++);
  out.push({ name: 'random, T=1, unmasked', feeds: { ...one, rowok: [1] }, T: 1 });
  return out;
}

// f32: big = 50 gives scaled scores of +-50*50*16/4 = +-1e4 in row 0 of every head.
const runs32 = runsFor(50);
// f16: big = 80 gives q.k = 80*80*16 = 102400 > 65504 (scaled: 25600, inside f16).
const runs16 = runsFor(80);

describe('preconditions of the inputs', () => {
  it('large-logit inputs reach scaled scores of +-1e4 (f32) and q.k past the f16 range (f16)', () => {
    for (const r of runs32.filter((x) => x.name.startsWith('large'))) expect(maxDot(r.feeds, r.T) / Math.sqrt(D)).toBeGreaterThanOrEqual(1e4);
    for (const r of runs16.filter((x) => x.name.startsWith('large'))) expect(maxDot(r.feeds, r.T)).toBeGreaterThan(65504);
    // Every value is an exact f16 (the interpreter does not round f16 inputs).
    for (const r of runs16) for (const x of [...r.feeds.q, ...r.feeds.k, ...r.feeds.v]) expect(Math.abs(x) <= 2048 && Number.isInteger(x * 64)).toBe(true);
  });
});

describe('the float64 interpreter on masked rows, +-1e4 logits and T = 1', () => {
  const g = checked('f32');
  const graphs: [string, Graph][] = [
    ['checked graph', g],
    ['fused graph', fused(g)],
    ['unfused graph', unfused(g)],
  ];
  it('the fused graph holds one fused_attention and no softmax; the unfused one a softmax', () => {
    expect(graphs[1]?.[1].nodes.filter((n) => n.op === 'fused_attention').length).toBe(1);
    expect(graphs[1]?.[1].nodes.some((n) => n.op === 'softmax')).toBe(false);
    expect(graphs[2]?.[1].nodes.some((n) => n.op === 'softmax')).toBe(true);
  });
  for (const [what, graph] of graphs) {
    it(`${what}: equals the written-out reference, masked rows exactly 0`, () => {
      for (const r of runs32) {
        const out = interpret(graph, { inputs: tensors(r.feeds, r.T, 'f32'), weights: new Map() }).outputs.get('o');
        if (out === undefined) throw new Error('no output');
        expect(relError(out.data, reference(r.feeds, r.T)), `${what}, ${r.name}`).toBeLessThan(1e-12);
        expectMaskedRowsZero(out.data, r.feeds, r.T, `${what}, ${r.name}`);
      }
    });
  }
});

describe('WebGPU plans on masked rows, +-1e4 logits and T = 1', () => {
  let dev: AcquiredDevice;
  const sessions: Session[] = [];
  beforeAll(async () => {
    dev = await testDevice();
  });
  afterAll(() => sessions.forEach((s) => s.dispose()));

  async function check(graph: Graph, dt: 'f32' | 'f16', runs: Run[], tol: number, what: string): Promise<void> {
    const plan = compilePlan(graph, { target: targetLimitsOf(dev) });
    const s = await createSession(dev, plan);
    sessions.push(s);
    for (const r of runs) {
      const inputs = tensors(r.feeds, r.T, dt);
      const want = interpret(graph, { inputs, weights: new Map() }).outputs.get('o');
      if (want === undefined) throw new Error('no reference');
      const got = (await s.run(inputs)).outputs.get('o');
      expect(got?.shape, `${what}, ${r.name}`).toEqual([B, H, r.T, D]);
      expect(relError(got?.data ?? [], want.data), `${what}, ${r.name}`).toBeLessThan(tol);
      expectMaskedRowsZero(got?.data ?? [], r.feeds, r.T, `${what}, ${r.name}`);
    }
  }

  // f32 kernels vs float64: 1e-4 relative (floor at 1e-2 of the output's scale).
  it('f32, fused plan (fused_attention)', async () => {
    const g = fused(checked('f32'));
    expect(g.nodes.some((n) => n.op === 'fused_attention')).toBe(true);
    await check(g, 'f32', runs32, 1e-4, 'f32 fused');
  }, 600_000);

  it('f32, unfused plan (--no-fuse)', async () => {
    const g = unfused(checked('f32'));
    expect(g.nodes.some((n) => n.op === 'fused_attention')).toBe(false);
    await check(g, 'f32', runs32, 1e-4, 'f32 unfused');
  }, 600_000);

  // f16 output: one f16 rounding (2^-11) plus the f32 work; q.k of 102400 must not overflow.
  it('f16, fused plan: q.k past 65504 still gives the right softmax (scores in f32)', async () => {
    const g = fused(checked('f16'));
    expect(g.nodes.some((n) => n.op === 'fused_attention')).toBe(true);
    await check(g, 'f16', runs16, 2e-3, 'f16 fused');
  }, 600_000);
});
