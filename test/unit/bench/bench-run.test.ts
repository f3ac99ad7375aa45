// `tfc bench` end to end on tiny sizes (WebGPU on lavapipe): every system runs, is checked against
// the float64 reference and lands in the JSON document; the table and plot files are written.
// Times are never asserted.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../../src/cli/main.js';
import type { BenchDocument } from '../../../src/cli/bench-report.js';

describe('tfc bench attention (tiny)', () => {
  it('runs tfc, tfc --no-fuse, ORT-Web and TF.js, checks each and writes JSON, SVG and PNG', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tfc-bench-'));
    let out = '';
    let err = '';
    const code = await main(['bench', 'attention', '--T', '16', '--dh', '8', '--heads', '2', '--causal', '--dtype', 'f32', '--repeats', '2', '--out-dir', dir], {
      out: (s) => (out += s),
      err: (s) => (err += s),
      env: {},
    });
    expect(code, err).toBe(0);
    const doc = JSON.parse(readFileSync(join(dir, 'attention.json'), 'utf8')) as BenchDocument;
    expect(doc.repeats).toBe(2);
    const results = doc.cases[0]?.results ?? [];
    expect(results.map((r) => r.system)).toEqual(['tfc', 'tfc --no-fuse', 'ort-mha', 'ort-plain', 'tfjs']);
    for (const r of results) {
      // Every system either produced a checked result or says why not; none is silently missing.
      expect(['ok', 'wrong', 'failed', 'skipped']).toContain(r.status);
      if (r.status === 'ok' || r.status === 'wrong') {
        expect(r.wallMs.length).toBe(2);
        expect(r.relErr).toBeTypeOf('number');
      } else expect(r.note).toBeTypeOf('string');
    }
    // tfc's own results must be right (f32 tolerance 1e-4 of max|o|) and timed by timestamp queries.
    const tfc = results.find((r) => r.system === 'tfc');
    expect(tfc?.status).toBe('ok');
    expect(tfc?.timeSource).toBe('timestamp-query');
    expect(tfc?.gpuMs?.length).toBe(2);
    expect(out).toContain('attention T=16 dh=8 causal f32');
    expect(readFileSync(join(dir, 'attention.svg'), 'utf8')).toContain('<polyline');
    expect(readFileSync(join(dir, 'attention.png')).subarray(1, 4).toString()).toBe('PNG');
    expect(err).toContain('] 5/5 T=16'); // the progress bar on stderr
  });
});

describe('tfc bench decode (tiny)', () => {
  it('interleaves contiguous, paged and int8 caches step by step, checks each against PyTorch and counts their dispatches', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tfc-bench-'));
    let err = '';
    // window=4 <= P = 5: the paged+SW row is checked against the oracle run with that window.
    const code = await main(['bench', 'decode', '--set', 'layers=1,d=32,heads=2,vocab=64,ctx=32,T=5,window=4', '--steps', '3', '--out-dir', dir], {
      out: () => undefined,
      err: (s) => (err += s),
      env: {},
    });
    expect(code, err).toBe(0);
    const doc = JSON.parse(readFileSync(join(dir, 'decode.json'), 'utf8')) as BenchDocument;
    const c = doc.cases[0];
    expect(c?.name).toBe('gpt2 decode P=5 +3');
    const results = c?.results ?? [];
    expect(results.map((r) => r.system)).toEqual(['tfc', 'tfc --no-fuse', 'tfc-paged', 'tfc-paged-sw', 'tfc-int8']);
    for (const r of results) {
      // Each system's first decode step matches PyTorch's logits (f32 tolerance 1e-3 of max|logit|,
      // the bench's 'ok' bar; tfc-int8 1e-2, the int8 cache's own rounding), then 3 timed steps.
      expect(r.status, r.note).toBe('ok');
      expect(r.wallMs.length).toBe(3);
      expect(r.note).toContain('interleaved');
      expect(r.note).toContain(`${r.kernels} dispatches per token`);
      // The per-kernel profile covers every dispatched step once (its count sums to the dispatches).
      expect((r.profile ?? []).reduce((a, p) => a + p.count, 0)).toBe(r.kernels);
    }
    const [fused, unfused, paged, sw, int8] = results;
    // Fusion removes dispatches; the decode path dispatches fewer kernels than the plan has steps.
    expect(fused?.kernels ?? 0).toBeLessThan(unfused?.kernels ?? 0);
    expect(paged?.kernels ?? 0).toBeGreaterThan(0);
    expect(sw?.kernels).toBe(paged?.kernels); // the window changes the pages read, not the kernels
    expect(sw?.note).toContain('window 4');
    // The int8 cache against the f32 oracle: off by its rounding (dh 16: 2.9e-3..5.6e-3 of
    // max |logit| in float64, docs/dtypes.md), not by 0 and not by more than the bench's 1e-2.
    expect(int8?.relErr ?? 1).toBeGreaterThan(1e-4);
    expect(int8?.relErr ?? 1).toBeLessThanOrEqual(1e-2);
    // Its step adds, per layer (this run has one: --set layers=1), the scales' kernels: per K and V the
    // scale (one fused_reduce) and its write, and keeps the K and V cache writes that the f32
    // cache's split attention kernel does itself (fuse-cache-write does not apply: the int8 load
    // dequantizes the stored cache): 18 per layer vs 12 on lavapipe (docs/performance.md,
    // "Decode dispatches").
    expect(int8?.kernels).toBe((fused?.kernels ?? 0) + 4 + 2);
    expect(err).toContain('10/10'); // progress: prefill and steps of the five systems
  });
});

describe('tfc bench train (tiny)', () => {
  it('times the fused and unfused training step on the same batches, each checked against float64', { timeout: 600_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tfc-bench-'));
    let err = '';
    const code = await main(['bench', 'train', '--set', 'B=2,T=8', '--steps', '2', '--out-dir', dir], { out: () => undefined, err: (s) => (err += s), env: {} });
    expect(code, err).toBe(0);
    const doc = JSON.parse(readFileSync(join(dir, 'train.json'), 'utf8')) as BenchDocument;
    const results = doc.cases[0]?.results ?? [];
    expect(results.map((r) => r.system)).toEqual(['tfc', 'tfc --no-fuse']);
    for (const r of results) {
      // The first step's loss within 1e-4 of the float64 interpreter's, then 2 timed steps.
      expect(r.status, r.note).toBe('ok');
      expect(r.relErr ?? 1).toBeLessThanOrEqual(1e-4);
      expect(r.wallMs.length).toBe(2);
    }
    // The fused training step runs fewer kernels than the unfused one.
    expect(results[0]?.kernels ?? 0).toBeLessThan(results[1]?.kernels ?? 0);
  });
});
