// Sliding-window paged decode (examples/variants/gpt2-paged.tfx --set window=256) at a sequence of
// P = 4096 cached tokens: the host keeps only the window's pages in the row's table (first_page
// > 0, MP = 17 pages of 16), so the decode attention kernel reads about window / P of the cache.
// `--report` (the compile driver's report, as `tfc compile --report`) of that kernel must be
// within 1.2x of the window's K/V bytes: K and V read through the page table with the table entry
// counted once per key (not per element) and a lazy where (a key is read from the pool or from
// the new tokens, not both). The same kernel with the whole history in the table (MP = 257)
// reads it all: the window, not the mask, is what bounds the traffic.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { lowerModel } from '../../../src/compile/kernels.js';
import { compileModel } from '../../../src/compile/model.js';
import type { TrafficReport } from '../../../src/kernel/analysis/report.js';
import { lavapipeLimits, webgpuDefaultLimits } from '../../../src/kernel/schedule/schedule.js';

const file = 'examples/variants/gpt2-paged.tfx';
const [HEADS, DH, PAGE, WINDOW, P] = [12, 64, 16, 256, 4096];
// GPT-2 small's attention (12 heads of 64); one layer and a small vocabulary keep the compile quick.
const overrides = new Map(Object.entries({ layers: 1, vocab: 256, ctx: 8192, window: WINDOW }));
const model = compileModel({ file, text: readFileSync(file, 'utf8') }, { target: 'webgpu', overrides });

/** The decode step's report (B = 1, T = 1) with `pages` pages in the row's table. */
function decodeReport(limits: typeof lavapipeLimits, pages: number): TrafficReport {
  return lowerModel(model, { limits }).report({ dims: new Map(Object.entries({ B: 1, T: 1, MP: pages, NP: 1024 })) });
}

function splitKernel(r: TrafficReport): { bytesRead: number; bytesWritten: number } {
  const k = r.kernels.filter((x) => x.op === 'fused_attention_split');
  expect(k, 'one split-K decode attention kernel').toHaveLength(1);
  return k[0] ?? { bytesRead: NaN, bytesWritten: NaN };
}

describe('sliding-window paged decode traffic at P = 4096, window 256', () => {
  // The window's keys and values, f32: what a decode step must read at least.
  const windowBytes = WINDOW * HEADS * DH * 4 * 2;
  // Pages the window touches: positions P - 255 .. P (the new token's own included) span 17 pages.
  const windowPages = Math.floor(P / PAGE) - Math.floor((P - WINDOW + 1) / PAGE) + 1;

  it('the window spans 17 pages of 16', () => {
    expect(windowPages).toBe(17);
  });

  for (const limits of [lavapipeLimits, webgpuDefaultLimits]) {
    it(`${limits.name}: the decode attention kernel's reported bytes are within 1.2x of the window's K/V bytes`, () => {
      const k = splitKernel(decodeReport(limits, windowPages));
      const moved = k.bytesRead + k.bytesWritten;
      console.log(`${limits.name}: decode attention ${k.bytesRead} B read + ${k.bytesWritten} B written = ${(moved / windowBytes).toFixed(3)}x the window's ${windowBytes} B`);
      expect(k.bytesRead).toBeGreaterThanOrEqual(windowBytes); // it does read the window
      expect(moved).toBeLessThanOrEqual(1.2 * windowBytes);
    });

    it(`${limits.name}: with the whole history in the table (no pages dropped), the same kernel reads P / window times more`, () => {
      const windowed = splitKernel(decodeReport(limits, windowPages)).bytesRead;
      const full = splitKernel(decodeReport(limits, P / PAGE + 1)).bytesRead;
      expect(full / windowed).toBeGreaterThan(0.9 * (P / WINDOW));
    });
  }
});
