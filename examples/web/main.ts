/// <reference types="@webgpu/types" />
// The browser page (index.html): imports the module `tfc compile examples/charlm/charlm.tfx -o
// out/charlm` generated, fetches charlm.safetensors with a progress bar, and generates text on
// navigator.gpu. URL parameters prefill the form (prompt, max, temperature, topk, seed);
// `autorun=1` generates at once, and `report=/path` POSTs the tokens, logits and timings there as
// JSON (test/e2e/browser/charlm.test.ts uses it).
import { acquireDevice, type LoadProgress } from 'tfc/runtime';
import { context, createModel, type Model } from '../../out/charlm/model.js';

interface Vocab {
  chars: string[];
  unknown: number;
}

const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (el === null) throw new Error(`index.html has no #${id}`);
  return el as T;
};
const progress = $<HTMLProgressElement>('progress');
const status = $<HTMLParagraphElement>('status');
const output = $<HTMLDivElement>('output');
const button = $<HTMLButtonElement>('generate');
const field = (id: string): HTMLInputElement => $<HTMLInputElement>(id);
const params = new URLSearchParams(location.search);
for (const id of ['prompt', 'max', 'temperature', 'topk', 'seed']) {
  const v = params.get(id);
  if (v !== null) field(id).value = v;
}

const phaseText: Record<LoadProgress['phase'], string> = {
  download: 'downloading weights',
  compile: 'compiling kernels',
  warmup: 'warming up kernels',
  upload: 'uploading weights',
  ready: 'ready',
};
function showProgress(p: LoadProgress): void {
  progress.value = p.total > 0 ? p.done / p.total : 1;
  const amount = p.phase === 'download' ? `${(p.done / 1024).toFixed(0)} / ${(p.total / 1024).toFixed(0)} KiB` : `${p.done} / ${p.total}`;
  status.textContent = `${phaseText[p.phase]}: ${amount}`;
}

async function load(): Promise<{ model: Model; vocab: Vocab; adapter: string }> {
  const dev = await acquireDevice();
  const vocab = (await (await fetch('vocab.json')).json()) as Vocab;
  const weights = await fetch('charlm.safetensors');
  if (!weights.ok) throw new Error(`charlm.safetensors: HTTP ${weights.status}`);
  const model = await createModel(dev, weights, { onProgress: showProgress });
  const adapter = dev.adapterInfo.description || dev.adapterInfo.vendor || 'WebGPU';
  return { model, vocab, adapter };
}

interface Generated {
  prompt: number[];
  tokens: number[];
  text: string;
  prefillMs: number;
  decodeMs: number[];
  stepLogits: number[][];
  /** Kernels the last decode step dispatched (the fused split-K attention path when T = 1). */
  decodeDispatches: number;
}

async function generate(model: Model, vocab: Vocab, keepLogits: boolean): Promise<Generated> {
  const text = field('prompt').value;
  const prompt = [...text].map((ch) => {
    const i = vocab.chars.indexOf(ch);
    return i >= 0 ? i : vocab.unknown;
  });
  if (prompt.length === 0) throw new Error('type a prompt first');
  const maxNewTokens = Math.min(Number(field('max').value), context - prompt.length);
  output.replaceChildren();
  const bold = document.createElement('span');
  bold.className = 'prompt';
  bold.textContent = text;
  const generated = document.createTextNode('');
  output.append(bold, generated);
  const stepLogits: number[][] = [];
  const r = await model.generate(prompt, {
    maxNewTokens,
    temperature: Number(field('temperature').value),
    topK: Number(field('topk').value),
    seed: Number(field('seed').value),
    onToken: (t) => void generated.appendData(vocab.chars[t] ?? '?'),
    ...(keepLogits ? { onLogits: (l: Float32Array) => void stepLogits.push(Array.from(l)) } : {}),
  });
  const decodeDispatches = model.runtime.session.stats.lastDispatches;
  const decode = r.decodeMs.reduce((a, b) => a + b, 0);
  const rate = r.decodeMs.length > 0 ? `, decode ${((1000 * r.decodeMs.length) / decode).toFixed(1)} tokens/s` : '';
  status.textContent = `prefill of ${prompt.length} tokens in ${r.prefillMs.toFixed(0)} ms${rate}`;
  return { prompt, tokens: r.tokens, text: generated.data, prefillMs: r.prefillMs, decodeMs: r.decodeMs, stepLogits, decodeDispatches };
}

async function main(): Promise<void> {
  const report = params.get('report');
  const send = (body: unknown): Promise<Response> | undefined =>
    report === null ? undefined : fetch(report, { method: 'POST', body: JSON.stringify(body) });
  try {
    const { model, vocab, adapter } = await load();
    status.textContent = `ready on ${adapter}`;
    button.disabled = false;
    $<HTMLFormElement>('form').addEventListener('submit', (e) => {
      e.preventDefault();
      button.disabled = true;
      generate(model, vocab, false)
        .catch((err: unknown) => (status.textContent = `error: ${String(err)}`))
        .finally(() => (button.disabled = false));
    });
    if (params.get('autorun') === '1') {
      button.disabled = true;
      const g = await generate(model, vocab, report !== null);
      button.disabled = false;
      // The prompt's logits from one forward run, for the test's comparison with PyTorch.
      const prefill = report === null ? [] : Array.from((await model.forward({ tokens: g.prompt })).logits.data);
      await send({ ok: true, adapter, ...g, prefillLogits: prefill });
    }
  } catch (err) {
    status.textContent = `error: ${err instanceof Error ? err.message : String(err)}`;
    await send({ ok: false, error: err instanceof Error ? `${err.message}\n${err.stack ?? ''}` : String(err) });
  }
}

void main();
