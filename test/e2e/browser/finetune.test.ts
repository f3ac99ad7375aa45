// examples/web's "fine-tune on this text" in headless Chromium (SwiftShader's WebGPU): charlm
// compiled as `tfc compile --train` does (test/helpers/train-module.ts), the page opened with
// autorun + finetune: it loads the served charlm folder, generates greedily, fine-tunes 5 steps on
// its text box (the generated createTrainer), then generates again. Each step's loss must equal the
// same steps run in Node through `tfc train`'s path on lavapipe (1e-4 relative: SwiftShader and
// lavapipe round f32 differently), the greedy text must change, and the second generation's prompt
// logits must be the Node forward pass with the Node-trained weights (1e-3: SwiftShader's RoPE
// tables, see charlm.test.ts). A module compiled without --train shows why fine-tuning is off.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import type { ViteDevServer } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { webConfig } from '../../../examples/web/config.js';
import { writeSafetensors } from '../../../src/io/safetensors.js';
import { acquireDevice } from '../../../src/runtime/device.js';
import { textBatches } from '../../../src/runtime/fine-tune.js';
import type { AcquiredDevice, LoadedModel, RunOutput } from '../../../src/runtime/index.js';
import { charIds, charlmTrainModule, referenceRun, repo } from '../../helpers/train-module.js';
import { chromiumPath, launch, serve } from './playwright.js';
import { existsSync } from 'node:fs';

interface Report {
  ok: boolean;
  kind?: string;
  stage?: string;
  error?: string;
  text?: string;
  tokens?: number[] | number;
  prefillLogits?: number[];
  trainText?: string;
  batch?: number;
  seq?: number;
  seed?: number;
  total?: number;
  losses?: number[];
  lrs?: number[];
}

interface NodeModule {
  createModel(device: AcquiredDevice, weights: Uint8Array, options?: { warmUp?: boolean }): Promise<{ runtime: LoadedModel; forward(i: Record<string, unknown>): Promise<Record<string, RunOutput>>; dispose(): void }>;
}

const dir = join(repo, `out/test-web-finetune-${process.pid}`);
let server: ViteDevServer | undefined;
let base = '';
let browser: Browser | undefined;

async function open(query: Record<string, string>): Promise<{ page: Page; reports: Report[] }> {
  if (browser === undefined) throw new Error('no browser');
  const page = await browser.newPage();
  const reports: Report[] = [];
  await page.route('**/__result', async (route) => {
    reports.push(JSON.parse(route.request().postData() ?? '{}') as Report);
    await route.fulfill({ body: 'ok' });
  });
  await page.goto(`${base}?${new URLSearchParams({ report: '/__result', ...query }).toString()}`);
  return { page, reports };
}

const noChromium = existsSync(chromiumPath) ? undefined : `needs Debian's chromium at ${chromiumPath} (apt-get install chromium)`;

describe.skipIf(noChromium !== undefined)(`examples/web fine-tuning in headless Chromium${noChromium === undefined ? '' : ` (skipped: ${noChromium})`}`, () => {
  beforeAll(async () => {
    mkdirSync(join(dir, 'node'), { recursive: true });
    // The page's copy imports tfc/runtime (webConfig aliases it); Node's imports the sources by path.
    writeFileSync(join(dir, 'model.ts'), await charlmTrainModule());
    writeFileSync(join(dir, 'node/model.ts'), await charlmTrainModule(relative(join(dir, 'node'), join(repo, 'src/runtime/index.js'))));
    ({ server, base } = await serve(webConfig({ model: join(dir, 'model.ts') })));
    browser = await launch();
  }, 300_000);
  afterAll(async () => {
    await browser?.close();
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('5 fine-tune steps: Node\'s losses, a changed greedy text, logits of the trained weights', { timeout: 900_000 }, async () => {
    const prompt = 'the cat ';
    const { page, reports } = await open({ checkpoint: 'checkpoint/', autorun: '1', finetune: '1', prompt, max: '24', temperature: '0', topk: '0', 'ft-steps': '5', 'ft-lr': '0.003', logits: '1' });
    await page.waitForFunction(() => document.body.dataset['state'] === 'error' || (document.body.dataset['state'] === 'done' && /Generate now uses/.test(document.getElementById('ft-status')?.textContent ?? '')), undefined, { timeout: 850_000, polling: 1000 });
    for (let i = 0; i < 50 && reports.length < 3 && !reports.some((r) => !r.ok); i++) await new Promise((r) => setTimeout(r, 200));
    expect(reports.filter((r) => !r.ok).map((r) => `${r.stage ?? ''}: ${r.error ?? ''}`)).toEqual([]);
    expect(reports.map((r) => r.kind ?? 'generate')).toEqual(['generate', 'finetune', 'generate']);
    const [before, tuned, after] = reports as [Report, Report, Report];
    expect(await page.textContent('#ft-status')).toMatch(/^fine-tuned 5 steps on \d+ tokens: loss [\d.]+ -> [\d.]+; Generate now uses the fine-tuned weights$/);

    // The same steps in Node (lavapipe), through tfc train's path.
    const ids = charIds(tuned.trainText ?? '');
    expect(tuned.tokens).toBe(ids.length);
    const batches = textBatches(ids, { steps: 5, batch: tuned.batch ?? 0, seq: tuned.seq ?? 0, seed: tuned.seed ?? -1 });
    const dev = await acquireDevice();
    const ref = await referenceRun(dev, batches, tuned.lrs ?? []);
    console.log(`fine-tune in Chromium: losses ${tuned.losses?.map((l) => l.toFixed(6)).join(' ')}; Node ${ref.losses.map((l) => l.toFixed(6)).join(' ')}`);
    expect(tuned.losses?.length).toBe(5);
    tuned.losses?.forEach((l, i) => expect(Math.abs(l - (ref.losses[i] ?? NaN)) / Math.abs(ref.losses[i] ?? NaN), `step ${i + 1}`).toBeLessThan(1e-4));

    // Generation afterwards runs with the trained weights: other text, and the prompt's logits are
    // those of a Node model loaded with the weights Node trained.
    console.log(`greedy before: ${JSON.stringify(before.text)}; after: ${JSON.stringify(after.text)}`);
    expect(after.text).not.toBe(before.text);
    const gen = (await import(/* @vite-ignore */ join(dir, 'node/model.ts'))) as NodeModule;
    const file = writeSafetensors(new Map([...ref.weights].map(([n, t]) => [n, { dtype: 'f32' as const, shape: [...t.shape], data: Float64Array.from(t.data) }])), 'f32');
    const model = await gen.createModel(dev, file, { warmUp: false });
    const want = Array.from((await model.forward({ tokens: charIds(prompt) }))['logits']?.data ?? []);
    const got = after.prefillLogits ?? [];
    expect(got.length).toBe(want.length);
    const scale = Math.max(...want.map(Math.abs));
    const err = Math.max(...want.map((v, i) => Math.abs((got[i] ?? NaN) - v))) / scale;
    const moved = Math.max(...(before.prefillLogits ?? []).map((v, i) => Math.abs(v - (want[i] ?? NaN)))) / scale;
    console.log(`prompt logits after fine-tuning vs Node: rel error ${err.toExponential(2)} (they moved by ${moved.toExponential(2)} of max |logit|)`);
    expect(err).toBeLessThan(1e-3);
    expect(moved).toBeGreaterThan(1e-2);
    model.dispose();
    await page.close();
  });

  it('a module compiled without --train: the section says so and its button stays off', { timeout: 300_000 }, async () => {
    const plain = join(dir, 'plain.ts');
    // The same module without its training step (as `tfc compile` without --train writes it).
    const { emitHostModule } = await import('../../../codegen/host/emit.js');
    const { compileModel } = await import('../../../src/compile/model.js');
    const { lowerModel } = await import('../../../src/compile/kernels.js');
    const { webgpuDefaultLimits } = await import('../../../src/kernel/schedule/schedule.js');
    const { readFileSync } = await import('node:fs');
    const c = compileModel({ file: 'examples/charlm/charlm.tfx', text: readFileSync(join(repo, 'examples/charlm/charlm.tfx'), 'utf8') });
    writeFileSync(plain, await emitHostModule(lowerModel(c, { limits: webgpuDefaultLimits }).plan, c.graph, { context: 128 }));
    const s = await serve(webConfig({ model: plain }));
    try {
      if (browser === undefined) throw new Error('no browser');
      const page = await browser.newPage();
      await page.goto(`${s.base}?checkpoint=checkpoint/`);
      await page.waitForFunction(() => ['ready', 'error'].includes(document.body.dataset['state'] ?? ''), undefined, { timeout: 200_000, polling: 500 });
      expect(await page.textContent('#error')).toBe('');
      expect(await page.textContent('#ft-status')).toBe('model charlm was compiled without its training step: recompile with `tfc compile MODEL.tfx --train -o out/web` to fine-tune here');
      expect(await page.isDisabled('#ft-run')).toBe(true);
      expect(await page.isDisabled('#generate')).toBe(false);
      await page.close();
    } finally {
      await s.server.close();
    }
  });
});
