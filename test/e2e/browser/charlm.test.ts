// examples/web in headless Chromium: the test compiles charlm as `tfc compile` does (webgpu
// pipeline with fusion, portable default limits: Chromium's adapter here is SwiftShader, without
// shader-f16 or subgroups), serves the example page with its own vite config (examples/web/config.ts)
// on 127.0.0.1, and opens it with autorun: the page reads the served checkpoint/ folder (charlm's
// weights streamed through a fetch Response, its character vocab.json), generates 10 greedy tokens
// and POSTs tokens and logits back. The tokens must equal the
// float64 PyTorch model's greedy loop (examples/charlm/oracle.py); logits within 1e-3 (see below).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ChromiumPage, chromiumPath, type PageReportBase } from './chromium.js';
import { emitHostModule } from '../../../codegen/host/emit.js';
import { webConfig } from '../../../examples/web/config.js';
import { checkSource } from '../../../src/check/check-source.js';
import { compilePlan } from '../../../src/compile/plan.js';
import { evalCondition } from '../../../src/kernel/plan/plan.js';
import { webgpuDefaultLimits } from '../../../src/kernel/schedule/schedule.js';
import { runPipeline } from '../../../src/passes/driver.js';
import { createPassContext } from '../../../src/passes/pass.js';
import { pipelines } from '../../../src/passes/pipeline.js';

const python = '/usr/bin/python3';
const repo = new URL('../../../', import.meta.url).pathname;
const hasTorch = existsSync(python) && (() => {
  try {
    execFileSync(python, ['-c', 'import torch'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

// Inside the repository (out/ is ignored) so that vite serves it under its fs.allow.
const dir = join(repo, `out/test-web-charlm-${process.pid}`);
const browser = new ChromiumPage();
afterAll(async () => {
  await browser.close();
  rmSync(dir, { recursive: true, force: true });
});

interface PageReport extends PageReportBase {
  adapter?: string;
  prompt?: number[];
  tokens?: number[];
  text?: string;
  prefillMs?: number;
  decodeMs?: number[];
  stepLogits?: number[][];
  prefillLogits?: number[];
  decodeDispatches?: number;
}

interface Oracle {
  prefill: number[][];
  steps: number[][];
  tokens: number[];
}

/** max |a - b| / max |b|: f32 logits against float64. */
function relErr(a: readonly number[] | undefined, b: readonly number[] | undefined): number {
  if (a === undefined || b === undefined || a.length !== b.length) return Infinity;
  let diff = 0;
  let scale = 0;
  b.forEach((v, i) => {
    diff = Math.max(diff, Math.abs((a[i] ?? NaN) - v));
    scale = Math.max(scale, Math.abs(v));
  });
  return diff / scale;
}

describe('examples/web: charlm in headless Chromium', () => {
  it.runIf(existsSync(chromiumPath) && hasTorch)('greedy tokens and logits equal float64 PyTorch', { timeout: 300_000 }, async () => {
    const r = checkSource(readFileSync(join(repo, 'examples/charlm/charlm.tfx'), 'utf8'), 'examples/charlm/charlm.tfx');
    if (r.graph === undefined) throw new Error(r.diagnostics.map((d) => d.message).join('\n'));
    const g = runPipeline(r.graph, pipelines.webgpu, createPassContext({ target: 'webgpu', verify: true }));
    const plan = compilePlan(g, { target: webgpuDefaultLimits });
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'model.ts'), await emitHostModule(plan, g, { context: 128, sourceName: 'charlm.tfx' }));
    // Decode (T = 1) takes the split-K attention kernels; prefill the one-pass kernel.
    const active = (T: number): number => plan.steps.filter((s) => s.when === undefined || evalCondition(s.when, new Map([['T', T]]))).length;
    const decodeKernels = plan.steps.filter((s) => s.when !== undefined && evalCondition(s.when, new Map([['T', 1]]))).map((s) => s.kernel);
    expect(decodeKernels.some((k) => k.endsWith('fused_attention_split'))).toBe(true);
    expect(decodeKernels.some((k) => k.endsWith('fused_attention_combine'))).toBe(true);

    const text = 'This License';
    const steps = 10;
    const vocab = (JSON.parse(readFileSync(join(repo, 'examples/charlm/vocab.json'), 'utf8')) as { chars: string[] }).chars;
    const ids = [...text].map((ch) => vocab.indexOf(ch));
    const out = execFileSync(python, [join(repo, 'examples/charlm/oracle.py'), join(repo, 'examples/charlm/charlm.safetensors'), ids.join(','), String(steps)], {
      cwd: join(repo, 'examples/charlm'),
      maxBuffer: 64 << 20,
    });
    const ref = JSON.parse(out.toString()) as Oracle;

    // checkpoint/: the files webConfig serves by default (charlm.safetensors as model.safetensors,
    // its character vocab.json), read by the page's urlReader like any served checkpoint folder.
    const q = new URLSearchParams({ prompt: text, max: String(steps), temperature: '0', topk: '0', seed: '0', checkpoint: 'checkpoint/', autorun: '1', logits: '1', report: '/__result' });
    const page = await browser.open<PageReport>({
      config: webConfig({ model: join(dir, 'model.ts') }),
      path: `/?${q.toString()}`,
      profilePrefix: 'tfc-chromium-charlm-',
      timeoutMs: 200_000,
    });
    expect(page.error).toBeUndefined();
    expect(page.ok).toBe(true);
    expect(page.prompt).toEqual(ids);
    expect(page.tokens).toEqual(ref.tokens);
    expect(page.text).toBe(ref.tokens.map((t) => vocab[t]).join(''));
    expect(page.stepLogits?.length).toBe(steps);
    const errs = ref.steps.map((l, i) => relErr(page.stepLogits?.[i], l));
    const prefillErr = relErr(page.prefillLogits, ref.prefill.flat());
    console.log(`charlm in Chromium: prefill rel error ${prefillErr.toExponential(2)}, decode steps ${errs.map((e) => e.toExponential(1)).join(' ')}`);
    // 1e-3, not the 1e-4 that lavapipe meets (test/webgpu/host-charlm.test.ts): WGSL only asks
    // sin/cos for 2^-11 absolute error (in [-pi, pi]), and SwiftShader's RoPE tables use that room
    // (measured 0.4-1.5e-4 here). Perturbing PyTorch's float64 cos/sin tables by +-2^-11 moves the
    // logits by 5.2e-4 of max|logit| (+-2^-13: 1.4e-4), so 1e-3 still fails a wrong kernel.
    errs.forEach((e, i) => expect(e, `decode step ${i}`).toBeLessThan(1e-3));
    expect(prefillErr).toBeLessThan(1e-3);
    expect(page.decodeMs?.length).toBe(steps - 1);
    expect(page.decodeDispatches).toBe(active(1));
    expect(active(1)).toBeLessThan(plan.steps.length);
    const decode = (page.decodeMs ?? []).reduce((a, b) => a + b, 0);
    console.log(
      `charlm in Chromium (${page.adapter}): "${text}" -> ${JSON.stringify(page.text)}; prefill ${page.prefillMs?.toFixed(0)} ms, ` +
        `decode ${((1000 * (page.decodeMs?.length ?? 0)) / decode).toFixed(1)} tokens/s`,
    );
  });
});
