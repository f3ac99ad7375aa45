// GPT-2 tiny in a browser: this test compiles the model (unfused, portable default WebGPU limits),
// makes seeded weights and inputs, and serves them with vite on 127.0.0.1; headless Chromium
// (--enable-unsafe-webgpu) runs gpt2-page.ts on navigator.gpu and POSTs the logits back, which
// must match the float64 interpreter (max rel error <= 1e-4, floor 1% of max|logit|).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ChromiumPage, chromiumPath, type PageReportBase } from './chromium.js';
import { checkSource } from '../../../src/check/check-source.js';
import { randomInputs, randomWeights } from '../../../src/cli/random.js';
import { gatherIndexRanges } from '../../../src/cli/webgpu.js';
import type { Diagnostic } from '../../../src/diag/diagnostic.js';
import { interpret } from '../../../src/interp/interpret.js';
import { neededTensors } from '../../../src/io/check-tensors.js';
import { compilePlan } from '../../../src/compile/plan.js';
import { webgpuDefaultLimits } from '../../../src/kernel/schedule/schedule.js';
import type { Tensor64 } from '../../../src/base/tensor.js';
import { runPipeline } from '../../../src/passes/driver.js';
import { createPassContext } from '../../../src/passes/pass.js';
import { graphPasses } from '../../../src/passes/pipeline.js';

const repoRoot = new URL('../../../', import.meta.url).pathname;

const browser = new ChromiumPage();
afterAll(() => browser.close());

interface PageReport extends PageReportBase {
  result?: { host: string; shape: number[]; logits: number[]; peakBytes: number; pipelines: number };
}

const plain = (m: ReadonlyMap<string, Tensor64>): Record<string, { dtype: string; shape: readonly number[]; data: number[] }> =>
  Object.fromEntries([...m].map(([k, t]) => [k, { dtype: t.dtype, shape: t.shape, data: Array.from(t.data) }]));

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

    const report = await browser.open<PageReport>({
      config: { root: repoRoot },
      json: { '/__gpt2': JSON.stringify({ plan, weights: plain(weights), inputs: plain(inputs), inputRanges: gatherIndexRanges(g) }) },
      path: '/test/e2e/browser/gpt2.html',
      profilePrefix: 'tfc-chromium-gpt2-',
      timeoutMs: 150_000,
    });
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
