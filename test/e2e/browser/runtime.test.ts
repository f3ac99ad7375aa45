// The WebGPU runtime in a browser: vite serves test/e2e/browser/index.html on 127.0.0.1 (WebGPU
// needs a secure context), headless Chromium (--enable-unsafe-webgpu; on CI SwiftShader) runs
// page.ts, which POSTs its results back; we check them against values computed here.
import { existsSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { ChromiumPage, chromiumPath, type PageReportBase } from './chromium.js';
import { seeded } from '../../webgpu/helpers.js';

const repoRoot = new URL('../../../', import.meta.url).pathname;

const browser = new ChromiumPage();
afterAll(() => browser.close());

interface PageReport extends PageReportBase {
  result?: { host: string; adapter: { vendor: string; architecture: string }; matmul: { shape: number[]; data: number[] }; add: number[]; peakBytes: number };
}

describe('webgpu runtime in headless Chromium', () => {
  it.runIf(existsSync(chromiumPath))('runs a tiled matmul and a broadcast add on navigator.gpu', { timeout: 120_000 }, async () => {
    const r = await browser.open<PageReport>({
      config: { root: repoRoot },
      path: '/test/e2e/browser/index.html',
      profilePrefix: 'tfc-chromium-',
      timeoutMs: 90_000,
    });
    expect(r.error).toBeUndefined();
    const res = r.result;
    expect(res?.host).toBe('browser');
    const [M, K, N] = [33, 7, 129];
    const a = seeded(M * K, 1);
    const b = seeded(K * N, 2);
    expect(res?.matmul.shape).toEqual([M, N]);
    let worstAbs = 0;
    for (let i = 0; i < M; i++)
      for (let j = 0; j < N; j++) {
        let acc = 0;
        for (let k = 0; k < K; k++) acc += (a[i * K + k] ?? 0) * (b[k * N + j] ?? 0);
        worstAbs = Math.max(worstAbs, Math.abs((res?.matmul.data[i * N + j] ?? NaN) - acc));
      }
    // fp32 accumulation of 7 products of values in [-1, 1): absolute error below 1e-5.
    expect(worstAbs).toBeLessThan(1e-5);
    // out[0,t,j] = 0 + w[j] + col[t] with w = 1..5, col = 0, 10, ..., 60.
    expect(res?.add).toEqual(Array.from({ length: 35 }, (_, i) => (i % 5) + 1 + 10 * Math.floor(i / 5)));
  });
});
