// f16 attention whose q.k passes the f16 range (|q.k| > 65504), issue 9: the --no-fuse plan must
// give finite output equal to the float64 interpreter, as the fused plan does. Without
// widen-attention-scores the unfused plan stores q @ transpose(k) as f16 and gets inf, then NaN.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkSource } from '../../src/check/check-source.js';
import type { Graph } from '../../src/graph/ir.js';
import { interpret } from '../../src/interp/interpret.js';
import { makeTensor, type Tensor64 } from '../../src/base/tensor.js';
import { compilePlan } from '../../src/compile/plan.js';
import { runPipeline } from '../../src/passes/driver.js';
import { type GraphPass, createPassContext } from '../../src/passes/pass.js';
import { pipelines, unfusedPipeline } from '../../src/passes/pipeline.js';
import type { AcquiredDevice } from '../../src/runtime/device.js';
import { createSession, type Session } from '../../src/runtime/session.js';
import { targetLimitsOf } from '../../src/runtime/target.js';
import { seeded, testDevice } from './helpers.js';

process.env['XDG_RUNTIME_DIR'] ??= '/tmp';

const B = 1;
const H = 2;
const D = 16; // scale 1/sqrt(16) = 0.25 is exact
const T = 7;

const source = `config {
  heads = ${H}
  dh = ${D}
}
dims B, T
input q: f16[B, heads, T, dh]
input k: f16[B, heads, T, dh]
input v: f16[B, heads, T, dh]
output o: f16[B, heads, T, dh]
model attn {
  s = q @ transpose(k) / sqrt(dh)
  m = grid[T, T](i, j) => j <= i
  o = softmax(where(m, s, -inf)) @ v
}
`;

// Integer q, k (exact in f16 and exact products in f32): row t of q is c_t * u plus noise in
// {-1, 0, 1}, with u a fixed sign vector and |c_t| <= 80, so |q.k| reaches 80 * 80 * 16 = 102400.
// Row 0 of q and of k is exactly 80 * u. v: multiples of 1/64 in [-4, 4] (exact in f16).
function feeds(): Map<string, Tensor64> {
  const u = Array.from({ length: D }, (_, x) => (x % 3 === 0 ? -1 : 1));
  const r = seeded(4 * B * H * T * D, 909);
  let at = 0;
  const next = (): number => r[at++] ?? 0;
  const rows = (): number[] => {
    const out: number[] = [];
    for (let bh = 0; bh < B * H; bh++)
      for (let t = 0; t < T; t++) {
        const c = t === 0 ? 80 : Math.round((next() * 2 - 1) * 80);
        for (let x = 0; x < D; x++) out.push(c * (u[x] ?? 1) + (t === 0 ? 0 : Math.round(next() * 2 - 1)));
      }
    return out;
  };
  const q = rows();
  const k = rows();
  const v = Array.from(seeded(B * H * T * D, 910), (x) => Math.round((x * 2 - 1) * 256) / 64);
  return new Map([
    ['q', makeTensor('f16', [B, H, T, D], q)],
    ['k', makeTensor('f16', [B, H, T, D], k)],
    ['v', makeTensor('f16', [B, H, T, D], v)],
  ]);
}

/** max |q.k| over the causal pairs (the precondition: past 65504). */
function maxDot(f: Map<string, Tensor64>): number {
  const q = f.get('q')?.data ?? new Float64Array();
  const k = f.get('k')?.data ?? new Float64Array();
  let m = 0;
  for (let bh = 0; bh < B * H; bh++)
    for (let i = 0; i < T; i++)
      for (let j = 0; j <= i; j++) {
        let dot = 0;
        for (let x = 0; x < D; x++) dot += (q[(bh * T + i) * D + x] ?? 0) * (k[(bh * T + j) * D + x] ?? 0);
        m = Math.max(m, Math.abs(dot));
      }
  return m;
}

/** Largest |got - want| / max(|want|, 1e-2 * max|want|); Infinity on any non-finite value. */
function relError(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let scale = 0;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i] ?? 0));
  const floor = Math.max(1e-2 * scale, 1e-30);
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    const g = got[i] ?? NaN;
    if (!Number.isFinite(g)) return Infinity;
    worst = Math.max(worst, Math.abs(g - (want[i] ?? NaN)) / Math.max(Math.abs(want[i] ?? NaN), floor));
  }
  return worst;
}

function checked(): Graph {
  const r = checkSource(source, 'attn.tfx', new Map());
  expect(r.diagnostics.map((d) => d.message)).toEqual([]);
  if (r.graph === undefined) throw new Error('no graph');
  return r.graph;
}
const through = (passes: readonly GraphPass[]): Graph => runPipeline(checked(), passes, createPassContext({ target: 'webgpu', verify: true }));

describe('f16 attention with |q.k| > 65504 on WebGPU', () => {
  let dev: AcquiredDevice;
  const sessions: Session[] = [];
  const inputs = feeds();
  // The reference: the float64 interpreter on the checked graph (it holds f16 values unrounded).
  const want = interpret(checked(), { inputs, weights: new Map() }).outputs.get('o')?.data ?? new Float64Array();
  beforeAll(async () => {
    dev = await testDevice();
  });
  afterAll(() => sessions.forEach((s) => s.dispose()));

  async function run(g: Graph): Promise<ArrayLike<number>> {
    const s = await createSession(dev, compilePlan(g, { target: targetLimitsOf(dev) }));
    sessions.push(s);
    const out = (await s.run(inputs)).outputs.get('o');
    expect(out?.shape).toEqual([B, H, T, D]);
    return out?.data ?? [];
  }

  it('the inputs reach q.k past the f16 range and the reference is finite', () => {
    expect(maxDot(inputs)).toBeGreaterThan(65504);
    expect(want.length).toBe(B * H * T * D);
    expect(want.every((x) => Number.isFinite(x))).toBe(true);
  });

  // 2e-3 relative: f16 output (one rounding, 2^-11 ~ 4.9e-4), the f32 probabilities rounded to
  // f16 once before @ v in the unfused plan (another 2^-11 of sum |p v| <= max |v|), f32 work.
  it('unfused plan (--no-fuse): scores widened to f32, finite, within 2e-3 of float64', async () => {
    const g = through(unfusedPipeline('webgpu'));
    expect(g.nodes.some((n) => n.op === 'fused_attention')).toBe(false);
    expect(g.nodes.some((n) => n.op === 'softmax' && n.type.dtype === 'f32')).toBe(true);
    expect(relError(await run(g), want)).toBeLessThan(2e-3);
  }, 600_000);

  it('fused plan: one fused_attention, finite, within 2e-3 of float64', async () => {
    const g = through(pipelines.webgpu);
    expect(g.nodes.filter((n) => n.op === 'fused_attention').length).toBe(1);
    expect(relError(await run(g), want)).toBeLessThan(2e-3);
  }, 600_000);

  it('without widen-attention-scores the unfused plan is not finite (what the pass fixes)', async () => {
    const g = through(unfusedPipeline('webgpu').filter((p) => p.name !== 'widen-attention-scores'));
    const got = await run(g);
    expect(Array.from(got).some((x) => !Number.isFinite(x))).toBe(true);
  }, 600_000);
});
