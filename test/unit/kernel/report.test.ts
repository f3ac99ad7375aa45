// The traffic report against hand-derived formulas on a one-matmul model.
import { describe, expect, it } from 'vitest';
import { lowerModel } from '../../../src/compile/kernels.js';
import { compileModel } from '../../../src/compile/model.js';
import { type TrafficReport, trafficReportJson } from '../../../src/kernel/report.js';
import { lavapipeLimits } from '../../../src/kernel/schedule.js';

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
    // The modelled time (cost.ts, lavapipe's typical 30 GFLOP/s and 12 GB/s, the lane matmul at
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
