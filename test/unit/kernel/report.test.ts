// The traffic report against hand-derived formulas on a one-matmul model.
import { describe, expect, it } from 'vitest';
import { lowerModel } from '../../../src/compile/kernels.js';
import { compileModel } from '../../../src/compile/model.js';
import { type TrafficReport, printTrafficReport, trafficReportJson } from '../../../src/kernel/analysis/report.js';
import { lavapipeLimits } from '../../../src/kernel/schedule/schedule.js';

/** The report `tfc compile --report --limits lavapipe` computes, through the compile driver. */
const report = (text: string, T: number, verify = true): TrafficReport =>
  lowerModel(compileModel({ file: 'm.tfx', text }, { target: 'webgpu', verify }), { limits: lavapipeLimits }).report({ dims: new Map([['T', T]]) });

const src = `dims T
input x: f32[T, 24]
weight w: f32[24, 40] = "w"
weight b: f32[40] = "b"
output y: f32[T, 40]
model m {
  y = x @ w + b
}
`;

describe('traffic report', () => {
  it('matches the hand formula for x @ w + b, fused and unfused', () => {
    const M = 7; // T
    const K = 24;
    const N = 40;
    const rep = report(src, M);
    // Lower bound: x, w and b read once, y written once (f32).
    expect(rep.lowerBound.bytesRead).toBe(4 * (M * K + K * N + N));
    expect(rep.lowerBound.bytesWritten).toBe(4 * M * N);
    // Fused: one tiled matmul (16x32 lane tiles on lavapipe: one row tile, two column tiles, so A
    // is read twice and B once) with the bias read once per output element in the epilogue.
    expect(rep.kernels.map((k) => k.op)).toEqual(['fused_matmul']);
    expect(rep.total.bytesRead).toBe(4 * (2 * M * K + K * N + M * N));
    expect(rep.total.bytesWritten).toBe(4 * M * N);
    expect(rep.total.flops).toBe(2 * M * N * K + M * N);
    // Unfused: the matmul, then an add kernel reading the product and the bias per element.
    expect(rep.unfused.kernels).toBe(2);
    expect(rep.unfused.bytesRead).toBe(4 * (2 * M * K + K * N) + 4 * 2 * M * N);
    expect(rep.unfused.bytesWritten).toBe(4 * 2 * M * N);
    const json = JSON.parse(trafficReportJson(rep)) as Record<string, unknown>;
    expect(Object.keys(json)).toEqual(['model', 'limits', 'dims', 'kernels', 'total', 'unfused', 'lowerBound', 'costModel', 'fusion']);
    expect(json['limits']).toBe('lavapipe');
    expect(json['kernels']).toEqual([{ name: expect.any(String), op: 'fused_matmul', bytesRead: rep.total.bytesRead, bytesWritten: 4 * M * N, flops: 2 * M * N * K + M * N, modelMs: expect.any(Number) }]);
    // The modelled time (kernel/analysis/cost.ts, lavapipe's typical 30 GFLOP/s and 12 GB/s, the lane matmul at
    // 0.75 of the peak): launch + max(FLOPs / (0.75 x 30e9), bytes / 12e9), in ms.
    const k0 = rep.kernels[0];
    const want = 0.03 + Math.max((2 * M * N * K + M * N) / (0.75 * 30e6), (rep.total.bytesRead + 4 * M * N) / 12e6);
    expect(k0?.modelMs).toBeCloseTo(want, 9);
    // One fusion row: the fused matmul replaced the unfused matmul and the bias add, both modelled.
    expect(rep.fusion.map((f) => f.replaced.length)).toEqual([2]);
    expect(rep.fusion[0]?.fusedMs).toBeCloseTo(want, 9);
    expect(rep.fusion[0]?.replacedMs).toBeCloseTo(rep.unfused.modelMs, 9);
    expect(trafficReportJson(rep)).toBe(trafficReportJson(report(src, M, false)));
  });

  it('counts a folded layernorm run as its own kernel (lavapipe: normFold separate) plus the plain fused matmul', () => {
    const [M, K, N] = [70, 24, 130];
    const rep = report(
      `dims T
input x: f32[T, 24]
weight g: f32[24] = "g"
weight be: f32[24] = "be"
weight w: f32[24, 130] = "w"
weight b: f32[130] = "b"
output y: f32[T, 130]
model m {
  y = layernorm(x, g, be) @ w + b
}
`,
      M,
    );
    // lavapipe's chooser runs the folded layernorm as a row kernel into a temp (x twice, gamma and
    // beta per element: 16 B per element read, the normalized A written), then the lane matmul
    // (16x32 tiles: ceil(70/16) = 5 row tiles, ceil(130/32) = 5 column tiles) reads that temp
    // once per column tile, W once per row tile and the bias once per output element.
    expect(rep.kernels.map((k) => k.op)).toEqual(['layernorm', 'fused_matmul']);
    expect(rep.total.bytesRead).toBe(16 * M * K + 4 * (M * K * 5 + K * N * 5 + M * N));
    expect(rep.total.bytesWritten).toBe(4 * M * K + 4 * M * N);
  });

});

describe('traffic report: block-sparse attention', () => {
  const attn = (mask: string): string => `dims T
input q: f32[2, T, 16]
input k: f32[2, T, 16]
input v: f32[2, T, 16]
output o: f32[2, T, 16]
model m {
  s = q @ transpose(k) / 4.0
  keep = grid[T, T](qi, ki) => ${mask}
  o = softmax(where(keep, s, -inf), axis=-1) @ v
}
`;
  /** Tiles of R query rows x C keys with at least one kept (q, k), q, k < T, brute force per element. */
  const keptTiles = (T: number, R: number, C: number, keep: (q: number, k: number) => boolean): { visited: number; total: number } => {
    let visited = 0;
    let total = 0;
    for (let q0 = 0; q0 < T; q0 += R)
      for (let k0 = 0; k0 < T; k0 += C) {
        total++;
        let any = false;
        for (let q = q0; q < Math.min(q0 + R, T) && !any; q++) for (let k = k0; k < Math.min(k0 + C, T) && !any; k++) any = keep(q, k);
        if (any) visited++;
      }
    return { visited, total };
  };

  for (const [label, mask, keep] of [
    ['causal', 'ki <= qi', (q: number, k: number) => k <= q],
    ['sliding window 24', 'ki <= qi && qi - ki < 24', (q: number, k: number) => k <= q && q - k < 24],
    // StreamingLLM: two sink keys plus the window; the tiles between them are skipped.
    ['streaming (2 sink keys + window 24)', 'ki <= qi && (ki < 2 || qi - ki < 24)', (q: number, k: number) => k <= q && (k < 2 || q - k < 24)],
  ] as const) {
    it(`${label}: K/V bytes and FLOPs only for the key tiles the kernel visits (T = 200)`, () => {
      const T = 200;
      const rep = report(attn(mask), T);
      const a = rep.kernels.find((k) => k.op === 'fused_attention');
      if (a === undefined) throw new Error('no fused attention kernel');
      const kernel = lowerModel(compileModel({ file: 'm.tfx', text: attn(mask) }, { target: 'webgpu' }), { limits: lavapipeLimits }).program.kernels.find((k) => k.op === 'fused_attention');
      const geo = kernel?.traffic.perTile?.tiles;
      if (geo === undefined) throw new Error('no tile geometry');
      expect(geo.heads).toBe(1);
      const want = keptTiles(T, geo.rows, geo.cols, keep);
      expect(a.tiles).toEqual({ visited: 2 * want.visited, total: 2 * want.total }); // 2 batches
      const frac = want.visited / want.total;
      const qTiles = Math.ceil(T / geo.rows);
      // Q read once; K and V (16 + 16 f32) once per query tile, for the visited fraction of tiles.
      expect(a.bytesRead).toBe(Math.round(4 * 2 * T * 16 + frac * 4 * 2 * qTiles * T * 32));
      // Two dot products of 16 per score, the visited fraction of scores.
      expect(a.flops).toBe(Math.round(frac * 2 * T * T * 2 * 32));
      expect(frac).toBeLessThan(label === 'causal' ? 0.6 : 0.5);
      expect(a.bytesWritten).toBe(4 * 2 * T * 16);
    });
  }

  it('a mask reading input data is counted in full (a worst case) and says so by omitting tiles', () => {
    const text = `dims T
input q: f32[2, T, 16]
input k: f32[2, T, 16]
input v: f32[2, T, 16]
input len: i32[2]
output o: f32[2, T, 16]
model m {
  s = q @ transpose(k) / 4.0
  keep = grid[2, T, T](b, qi, ki) => ki < len[b]
  o = softmax(where(keep, s, -inf), axis=-1) @ v
}
`;
    const a = report(text, 64).kernels.find((k) => k.op === 'fused_attention');
    expect(a).toBeDefined();
    expect(a?.tiles).toBeUndefined();
    expect(a?.flops).toBe(2 * 64 * 64 * 2 * 32);
  });
});

describe('traffic report: split-K decode over a sliding window', () => {
  it('one query over a 4096-key cache with a 256-key window reads about the window of K/V, not the cache', () => {
    const text = `dims T, S
input q: f32[1, 4, T, 64]
input k: f32[1, 4, S, 64]
input v: f32[1, 4, S, 64]
output o: f32[1, 4, T, 64]
model m {
  s = q @ transpose(k) / 8.0
  keep = grid[T, S](qi, ki) => ki <= S - T + qi && S - T + qi - ki < 256
  o = softmax(where(keep, s, -inf), axis=-1) @ v
}
`;
    const rep = lowerModel(compileModel({ file: 'm.tfx', text }, { target: 'webgpu', verify: true }), { limits: lavapipeLimits }).report({ dims: new Map([['T', 1], ['S', 4096]]) });
    const split = rep.kernels.find((k) => k.op === 'fused_attention_split' && k.tiles !== undefined);
    if (split === undefined) throw new Error('no counted split-K kernel');
    const window = 4 * 256 * (64 + 64) * 4; // K and V rows the window covers, f32, 4 heads
    const cache = 4 * 4096 * (64 + 64) * 4;
    const q = 4 * 64 * 4;
    // The visited tiles cover the window plus at most one partial tile on each side.
    expect(split.bytesRead - q).toBeGreaterThanOrEqual(window);
    expect(split.bytesRead - q).toBeLessThanOrEqual(1.3 * window);
    expect(split.bytesRead).toBeLessThan(cache / 10);
    expect(split.flops).toBeLessThanOrEqual(1.3 * 4 * 256 * 2 * 128);
  });
});

describe('traffic report: the fused attention backward', () => {
  // A one-head causal attention with a loss (`--grad`): forward fused before grad, so the backward
  // is one fused_attention_grad whose two roles each visit only the tiles the mask keeps.
  const text = `dims T
input tokens: i32[2, T]
weight emb: f32[8, 16] = "emb"
weight wq: f32[16, 16] = "wq"
weight wk: f32[16, 16] = "wk"
weight wv: f32[16, 16] = "wv"
weight wo: f32[16, 8] = "wo"
output logits: f32[2, T, 8]
model m {
  x = emb[tokens]
  s = (x @ wq) @ transpose(x @ wk) / 4.0
  keep = grid[T, T](qi, ki) => ki <= qi
  logits = (softmax(where(keep, s, -inf), axis=-1) @ (x @ wv)) @ wo
}
`;
  const T = 200;
  const stages = lowerModel(compileModel({ file: 'm.tfx', text }, { target: 'webgpu', grad: true }), { limits: lavapipeLimits });
  const rep = stages.report({ dims: new Map([['T', T]]) });
  const a = rep.kernels.find((k) => k.op === 'fused_attention_grad');
  const kernel = stages.program.kernels.find((k) => k.op === 'fused_attention_grad');

  it('credits both roles for the causal tiles they skip, and states its bytes against its operands once', () => {
    if (a === undefined || kernel === undefined) throw new Error('no fused_attention_grad kernel');
    const geo = kernel.traffic.perTile?.tiles;
    if (geo === undefined || kernel.traffic.perKvTile === undefined) throw new Error('no per-role tile traffic');
    // Brute force: (query tile, key tile) pairs with a kept (q, k), per batch; both roles walk the same pairs.
    let visited = 0;
    let total = 0;
    for (let q0 = 0; q0 < T; q0 += geo.rows)
      for (let k0 = 0; k0 < T; k0 += geo.cols) {
        total++;
        if (k0 <= Math.min(q0 + geo.rows, T) - 1) visited++;
      }
    expect(a.tiles).toEqual({ visited: 2 * 2 * visited, total: 2 * 2 * total }); // 2 batches, 2 roles
    const frac = visited / total;
    expect(frac).toBeLessThan(0.6);
    // Per role, the per-tile reads scale by the visited fraction; Q, dO, O, LSE and K, V once.
    const e = 4;
    const qTiles = Math.ceil(T / geo.rows);
    const kTiles = Math.ceil(T / geo.cols);
    const once = 2 * T * e * (16 + 16) + 2 * T * e * (16 + 2 * 16 + 1);
    const kvRole = 2 * kTiles * T * e * (16 + 2 * 16 + 1); // Q, dO, O rows and LSE per key tile
    const qRole = 2 * qTiles * T * e * (16 + 16); // K, V per query tile
    expect(a.bytesRead).toBe(Math.round(once + frac * kvRole + frac * qRole));
    expect(a.bytesWritten).toBe(2 * T * e * 16 * 3); // dQ, dK, dV
    expect(a.onceBytes).toBe(once + a.bytesWritten);
    const line = printTrafficReport(rep).split('\n').find((l) => l.startsWith('attention backward:'));
    expect(line).toContain(`${a.name} ${((a.bytesRead + a.bytesWritten) / (once + a.bytesWritten)).toFixed(2)}x`);
  });
});
