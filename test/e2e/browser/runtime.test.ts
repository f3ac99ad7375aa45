// The WebGPU runtime in a browser: vite serves test/e2e/browser/index.html on 127.0.0.1 (WebGPU
// needs a secure context), headless Chromium (--enable-unsafe-webgpu; on CI SwiftShader) runs
// page.ts, which POSTs its results back; we check them against values computed here.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { stopChromium } from './chromium.js';
import { createServer, type ViteDevServer } from 'vite';
import { seeded } from '../../webgpu/helpers.js';

const chromiumPath = '/usr/bin/chromium';
const repoRoot = new URL('../../../', import.meta.url).pathname;

let server: ViteDevServer | undefined;
let chrome: ChildProcess | undefined;
let profile: string | undefined;
afterAll(async () => {
  await server?.close();
  await stopChromium(chrome, profile);
});

interface PageReport {
  ok: boolean;
  error?: string;
  result?: { host: string; adapter: { vendor: string; architecture: string }; matmul: { shape: number[]; data: number[] }; add: number[]; peakBytes: number };
}

async function runPage(): Promise<PageReport> {
  let deliver: (r: PageReport) => void = () => undefined;
  const report = new Promise<PageReport>((resolve) => (deliver = resolve));
  server = await createServer({
    root: repoRoot,
    logLevel: 'error',
    configFile: false,
    server: { host: '127.0.0.1', port: 0, strictPort: false, hmr: false },
    plugins: [
      {
        name: 'tfc-result',
        configureServer(s) {
          s.middlewares.use('/__result', (req, res) => {
            let body = '';
            req.on('data', (c: Buffer) => (body += c.toString()));
            req.on('end', () => {
              res.end('ok');
              deliver(JSON.parse(body) as PageReport);
            });
          });
        },
      },
    ],
  });
  await server.listen();
  const addr = server.httpServer?.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  profile = mkdtempSync(join(tmpdir(), 'tfc-chromium-'));
  chrome = spawn(
    chromiumPath,
    ['--headless=new', '--no-sandbox', '--enable-unsafe-webgpu', '--no-first-run', `--user-data-dir=${profile}`, `http://127.0.0.1:${port}/test/e2e/browser/index.html`],
    { stdio: 'ignore' },
  );
  const timeout = new Promise<PageReport>((resolve) => setTimeout(() => resolve({ ok: false, error: 'no report from the page within 90 s' }), 90_000));
  return Promise.race([report, timeout]);
}

describe('webgpu runtime in headless Chromium', () => {
  it.runIf(existsSync(chromiumPath))('runs a tiled matmul and a broadcast add on navigator.gpu', { timeout: 120_000 }, async () => {
    const r = await runPage();
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
