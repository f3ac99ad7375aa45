// GPT-2 tiny in a browser: this test compiles the model (unfused, portable default WebGPU limits),
// makes seeded weights and inputs, and serves them with vite on 127.0.0.1; headless Chromium
// (--enable-unsafe-webgpu) runs gpt2-page.ts on navigator.gpu and POSTs the logits back, which
// must match the float64 interpreter (max rel error <= 1e-4, floor 1% of max|logit|).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { stopChromium } from './chromium.js';
import { createServer, type ViteDevServer } from 'vite';
import { checkSource } from '../../../src/check/check-source.js';
import { randomInputs, randomWeights } from '../../../src/cli/random.js';
import { gatherIndexRanges } from '../../../src/cli/webgpu.js';
import type { Diagnostic } from '../../../src/diag/diagnostic.js';
import { interpret } from '../../../src/interp/interpret.js';
import { neededTensors } from '../../../src/io/check-tensors.js';
import { compilePlan } from '../../../src/kernel/compile-plan.js';
import { webgpuDefaultLimits } from '../../../src/kernel/schedule.js';
import type { Tensor64 } from '../../../src/ops/define.js';
import { runPipeline } from '../../../src/passes/driver.js';
import { createPassContext } from '../../../src/passes/pass.js';
import { graphPasses } from '../../../src/passes/pipeline.js';

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
  result?: { host: string; shape: number[]; logits: number[]; peakBytes: number; pipelines: number };
}

const plain = (m: ReadonlyMap<string, Tensor64>): Record<string, { dtype: string; shape: readonly number[]; data: number[] }> =>
  Object.fromEntries([...m].map(([k, t]) => [k, { dtype: t.dtype, shape: t.shape, data: Array.from(t.data) }]));

async function runPage(payload: string): Promise<PageReport> {
  let deliver: (r: PageReport) => void = () => undefined;
  const report = new Promise<PageReport>((resolve) => (deliver = resolve));
  server = await createServer({
    root: repoRoot,
    logLevel: 'error',
    configFile: false,
    server: { host: '127.0.0.1', port: 0, strictPort: false, hmr: false },
    plugins: [
      {
        name: 'tfc-gpt2',
        configureServer(s) {
          s.middlewares.use('/__gpt2', (_req, res) => {
            res.setHeader('content-type', 'application/json');
            res.end(payload);
          });
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
  profile = mkdtempSync(join(tmpdir(), 'tfc-chromium-gpt2-'));
  chrome = spawn(
    chromiumPath,
    ['--headless=new', '--no-sandbox', '--enable-unsafe-webgpu', '--no-first-run', `--user-data-dir=${profile}`, `http://127.0.0.1:${port}/test/e2e/browser/gpt2.html`],
    { stdio: 'ignore' },
  );
  const timeout = new Promise<PageReport>((resolve) => setTimeout(() => resolve({ ok: false, error: 'no report from the page within 150 s' }), 150_000));
  return Promise.race([report, timeout]);
}

describe('GPT-2 tiny in headless Chromium', () => {
  it.runIf(existsSync(chromiumPath))('runs the compiled plan on navigator.gpu; logits match the interpreter', { timeout: 200_000 }, async () => {
    const file = join(repoRoot, 'examples/gpt2.tfx');
    const r = checkSource(readFileSync(file, 'utf8'), 'examples/gpt2.tfx', new Map(Object.entries({ layers: 2, d: 64, heads: 4, vocab: 256, ctx: 64 })));
    if (r.graph === undefined) throw new Error(r.diagnostics.map((d) => d.message).join('; '));
    const g = runPipeline(r.graph, graphPasses, createPassContext({ target: 'webgpu' }));
    const plan = compilePlan(g, { target: webgpuDefaultLimits });
    const ds: Diagnostic[] = [];
    const dims = new Map([['B', 2], ['T', 32]]);
    const weights = randomWeights(neededTensors(g), 3, dims, ds);
    const inputs = randomInputs(g, neededTensors(g), 4, dims, ds);
    expect(ds).toEqual([]);
    const want = interpret(g, { inputs, weights }).outputs.get('logits');
    if (want === undefined) throw new Error('no logits');

    const report = await runPage(JSON.stringify({ plan, weights: plain(weights), inputs: plain(inputs), inputRanges: gatherIndexRanges(g) }));
    expect(report.error).toBeUndefined();
    const res = report.result;
    expect(res?.host).toBe('browser');
    expect(res?.shape).toEqual([2, 32, 256]);
    expect(res?.pipelines).toBe(plan.kernels.length);
    let scale = 0;
    for (const v of want.data) scale = Math.max(scale, Math.abs(v));
    let worst = 0;
    want.data.forEach((w, i) => (worst = Math.max(worst, Math.abs((res?.logits[i] ?? NaN) - w) / Math.max(Math.abs(w), 1e-2 * scale))));
    console.log(`gpt2 tiny in Chromium: max rel error ${worst.toExponential(2)}, peak GPU memory ${res?.peakBytes} B`);
    // f32 kernels vs float64 (see test/webgpu/models.test.ts for the same bar in Node).
    expect(worst).toBeLessThanOrEqual(1e-4);
  });
});
