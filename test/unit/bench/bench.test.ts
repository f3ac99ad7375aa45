// `tfc bench` pieces that need no GPU: the float64 attention reference (against the interpreter),
// the BSNH layout helpers, the hand-written ONNX models (run on ORT's CPU EP against the
// reference), the error check, the table, the JSON document's shape and the plot.
import v8 from 'node:v8';
import { describe, expect, it } from 'vitest';
import { checkSource } from '../../../src/check/check-source.js';
import { interpret } from '../../../src/interp/interpret.js';
import { seeded } from '../../../src/cli/bench.js';
import { attentionReference, attentionSource, checkedRows, fromBsnh, toBsnh } from '../../../src/cli/bench-attention.js';
import { mhaAttentionOnnx, onnxType, plainAttentionOnnx } from '../../../src/cli/bench-onnx.js';
import { type CaseResult, compare, formatTable, median, percentOfPeak, plotSvg, spread } from '../../../src/cli/bench-report.js';

const shape = { B: 1, H: 2, T: 7, dh: 4 };

describe('bench attention reference', () => {
  for (const causal of [true, false]) {
    it(`equals the float64 interpreter on the generated .tfx (${causal ? 'causal' : 'full'}, T=7)`, () => {
      const { B, H, T, dh } = shape;
      const n = B * H * T * dh;
      const [q, k, v] = [seeded(n, 1), seeded(n, 2), seeded(n, 3)];
      const r = checkSource(attentionSource(H, dh, causal, 'f32'), 'attention.tfx');
      expect(r.diagnostics.filter((d) => d.severity === 'error')).toEqual([]);
      if (r.graph === undefined) throw new Error('no graph');
      const t = (data: Float32Array) => ({ dtype: 'f32' as const, shape: [B, H, T, dh], data: Float64Array.from(data) });
      const want = interpret(r.graph, { inputs: new Map([['q', t(q)], ['k', t(k)], ['v', t(v)]]), weights: new Map() }).outputs.get('o');
      const ref = attentionReference(q, k, v, { ...shape, causal }, checkedRows(T));
      expect(ref.at.length).toBe(n); // T <= 64: every row is checked
      // Both are float64 with different summation orders: agreement to 1e-12.
      let worst = 0;
      ref.at.forEach((i, j) => (worst = Math.max(worst, Math.abs((want?.data[i] ?? NaN) - (ref.want[j] ?? NaN)))));
      expect(worst).toBeLessThan(1e-12);
    });
  }

  it('checks the first, second and last rows and a spread of others for long sequences', () => {
    const rows = checkedRows(2048);
    expect(rows.slice(0, 2)).toEqual([0, 1]);
    expect(rows[rows.length - 1]).toBe(2047);
    expect(rows.length).toBeGreaterThan(20);
  });

  it('moves [B,H,T,dh] to [B,T,H*dh] and back', () => {
    const x = seeded(2 * 3 * 5 * 4, 9);
    const y = toBsnh(x, 2, 3, 5, 4);
    // element (b=1, h=2, t=3, c=1) lands at ((1*5 + 3)*3 + 2)*4 + 1
    expect(y[((1 * 5 + 3) * 3 + 2) * 4 + 1]).toBe(x[((1 * 3 + 2) * 5 + 3) * 4 + 1]);
    expect(fromBsnh(y, 2, 3, 5, 4)).toEqual(x);
  });
});

describe('bench ONNX models (ORT CPU execution provider)', () => {
  for (const causal of [true, false]) {
    it(`plain graph and MultiHeadAttention match the reference (${causal ? 'causal' : 'full'})`, async () => {
      v8.setFlagsFromString('--liftoff-only'); // ORT's wasm needs it on Node 20
      const ort = await import('onnxruntime-web');
      const { B, H, T, dh } = shape;
      const n = B * H * T * dh;
      const [q, k, v] = [seeded(n, 4), seeded(n, 5), seeded(n, 6)];
      const ref = attentionReference(q, k, v, { ...shape, causal }, checkedRows(T));
      const s = { B, heads: H, T, dh, causal, elemType: onnxType.float };
      const plain = await ort.InferenceSession.create(plainAttentionOnnx(s), { executionProviders: ['wasm'] });
      const t4 = (x: Float32Array) => new ort.Tensor('float32', x, [B, H, T, dh]);
      const p = await plain.run({ q: t4(q), k: t4(k), v: t4(v) });
      // f32 on ORT's CPU kernels: within 1e-6 of max|o|.
      expect(compare(p['o']?.data as Float32Array, ref.want, ref.at).relErr).toBeLessThan(1e-6);
      const mha = await ort.InferenceSession.create(mhaAttentionOnnx(s), { executionProviders: ['wasm'] });
      const t3 = (x: Float32Array) => new ort.Tensor('float32', toBsnh(x, B, H, T, dh), [B, T, H * dh]);
      const m = await mha.run({ q: t3(q), k: t3(k), v: t3(v) });
      expect(compare(fromBsnh(m['o']?.data as Float32Array, B, H, T, dh), ref.want, ref.at).relErr).toBeLessThan(1e-6);
    });
  }
});

describe('bench report', () => {
  const cases: CaseResult[] = [
    {
      suite: 'attention',
      name: 'attention T=8',
      params: { T: 8, dh: 4, causal: true, dtype: 'f32', heads: 2 },
      results: [
        { system: 'tfc', status: 'ok', timeSource: 'timestamp-query', wallMs: [3, 4, 5], gpuMs: [1, 2, 3], maxAbsErr: 1e-7, relErr: 2e-7, kernels: 1 },
        { system: 'tfjs', status: 'ok', timeSource: 'tfjs-kernelMs', wallMs: [9, 9, 9], gpuMs: [4, 4, 4], maxAbsErr: 1e-7, relErr: 2e-7, kernels: 4 },
        { system: 'ort-plain', status: 'ok', timeSource: 'wall', wallMs: [12, 12, 12], maxAbsErr: 1e-7, relErr: 2e-7 },
        { system: 'ort-mha', status: 'wrong', timeSource: 'wall', wallMs: [1, 1, 1], maxAbsErr: 0.03, relErr: 0.03, note: 'error 3.0e-2 above tolerance 0.0001' },
      ],
    },
  ];

  it('computes medians, spreads and errors', () => {
    expect(median([5, 1, 3])).toBe(3);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(spread([1, 2, 3])).toBe(1);
    expect(compare([1, 2.5], [1, 2])).toEqual({ maxAbsErr: 0.5, relErr: 0.25, nonFinite: 0 });
    expect(compare([NaN, 2], [1, 2]).maxAbsErr).toBe(Infinity);
  });

  it('prints ratios on GPU time when both sides have it, wall time otherwise, and never a ratio for a wrong result', () => {
    const table = formatTable(cases);
    const line = (sys: string) => table.split('\n').find((l) => l.includes(` ${sys} `)) ?? '';
    expect(line('tfjs')).toContain('2.00x gpu'); // 4 ms / 2 ms
    expect(line('ort-plain')).toContain('3.00x wall'); // 12 ms / 4 ms
    expect(line('ort-mha')).toContain('WRONG');
    expect(line('ort-mha')).not.toMatch(/\dx /);
  });

  it('puts % of the peak beside each ok result: FLOPs against the FMA peak, bytes against copy', () => {
    const c = cases[0];
    if (c === undefined) throw new Error('no case');
    const peak = { fmaGflops: 10, copyGBs: 5 };
    // 2e7 FLOPs in 2 ms (the tfc GPU median) = 10 GFLOP/s = 100% of a 10 GFLOP/s peak.
    expect(percentOfPeak({ ...c, work: { flops: 2e7 } }, 2, peak)).toBeCloseTo(100, 9);
    // 5e6 bytes in 2 ms = 2.5 GB/s = 50% of 5 GB/s.
    expect(percentOfPeak({ ...c, work: { bytes: 5e6 } }, 2, peak)).toBeCloseTo(50, 9);
    expect(percentOfPeak(c, 2, peak)).toBeUndefined(); // no work figure
    const table = formatTable([{ ...c, work: { flops: 2e7 } }], 'tfc', peak);
    const [header, , ...rows] = table.split('\n');
    expect(header).toContain('% peak');
    const row = (sys: string): string => rows.find((l) => l.includes(` ${sys} `)) ?? '';
    expect(row('tfc')).toContain('100% fma');
    // tfjs: 4 ms GPU median -> 50%; a wrong result gets no percentage.
    expect(row('tfjs')).toContain('50% fma');
    expect(row('ort-mha').trimEnd().endsWith('-')).toBe(true);
    expect(formatTable(cases)).not.toContain('% peak');
  });

  it('keeps every sample in a JSON document that round-trips', () => {
    const doc = JSON.parse(JSON.stringify({ tool: 'tfc bench', version: 1, cases })) as { cases: CaseResult[] };
    expect(doc.cases[0]?.results[0]?.gpuMs).toEqual([1, 2, 3]);
    expect(Object.keys(doc.cases[0]?.results[0] ?? {})).toEqual(expect.arrayContaining(['system', 'status', 'timeSource', 'wallMs', 'maxAbsErr', 'relErr']));
  });

  it('plots one line per system and one panel per series', () => {
    const svg = plotSvg('t', [
      { panel: 'dh=64', system: 'tfc', x: 256, ms: 1 },
      { panel: 'dh=64', system: 'tfc', x: 1024, ms: 10 },
      { panel: 'dh=64', system: 'ort', x: 256, ms: 2 },
      { panel: 'dh=128', system: 'tfc', x: 256, ms: 3 },
    ]);
    expect(svg.match(/<polyline/g)?.length).toBe(3);
    expect(svg).toContain('dh=128');
    expect(svg.startsWith('<svg')).toBe(true);
  });
});
