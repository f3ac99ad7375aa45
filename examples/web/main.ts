/// <reference types="@webgpu/types" />
// The browser page (index.html) for a model compiled by `tfc compile MODEL.tfx -o out/web`: the user
// picks a Hugging Face checkpoint folder (a directory input: filesReader) or loads the files served
// next to the page (urlReader), watches weights stream and pipelines compile and warm up, then
// generates text, streamed token by token with tokens/s. Errors (no WebGPU, a folder without
// weights or tokenizer, a missing shard, a config.json the module was not compiled for) are shown
// in the page.
// A module compiled with --train also gets the fine-tune section (finetune.ts).
// URL parameters: prompt, max, temperature, topk, seed, ft-steps, ft-lr fill the forms; `checkpoint=URL`
// loads that folder at once; `autorun=1` generates once it is loaded, and with `finetune=1` then
// fine-tunes and generates again; `report=/path` POSTs what each generation, fine-tuning (or error)
// produced there as JSON (`logits=1` adds every step's logits): the e2e tests
// (test/e2e/browser/web-page.test.ts, charlm.test.ts, finetune.test.ts) read it.
import { acquireDevice, filesReader, openCheckpoint, urlReader, type AcquiredDevice, type CheckpointReader, type GenerateResult, type TextTokenizer } from 'tfc/runtime';
// A namespace import: a module compiled without --train has no createTrainer (a named import of it
// would fail to link).
import * as compiled from '../../out/web/model.js';
import { batchSize, type CreateTrainer, FineTuner, ftStatus, seed as ftSeed, windowLength } from './finetune.js';
import { $, errorText, field, resetProgress, setState, showError, showProgress, startOutput, status } from './ui.js';

type Model = compiled.Model;
const { context, createModel, spec } = compiled;
const createTrainer = (compiled as unknown as { createTrainer?: CreateTrainer<Model> }).createTrainer;

const params = new URLSearchParams(location.search);
for (const id of ['prompt', 'max', 'temperature', 'topk', 'seed', 'ft-steps', 'ft-lr']) {
  const v = params.get(id);
  if (v !== null) field(id).value = v;
}
const servedBase = params.get('checkpoint') ?? 'checkpoint/';
$('served-url').textContent = servedBase;
const report = params.get('report');
const wantLogits = params.get('logits') === '1';
const send = async (body: unknown): Promise<void> => {
  if (report !== null) await fetch(report, { method: 'POST', body: JSON.stringify(body) });
};

const config = Object.entries(spec.config ?? {}).map(([k, c]) => `${k} = ${c.value}`);
$('model').textContent = `model ${spec.name} (vocabulary ${spec.vocab ?? '?'}, context ${context})${config.length > 0 ? `, compiled for ${config.join(', ')}` : ''}`;

interface Loaded {
  model: Model;
  tokenizer: TextTokenizer;
  where: string;
  read: CheckpointReader;
}
let device: AcquiredDevice | undefined;
let loaded: Loaded | undefined;
let tuner: FineTuner<Model> | undefined;
const button = $<HTMLButtonElement>('generate');
const ftButton = $<HTMLButtonElement>('ft-run');
const sources = [field('folder'), $<HTMLButtonElement>('served')];

/** Opens the folder, builds the model on the GPU with progress; errors end up in the page. */
async function load(read: CheckpointReader): Promise<boolean> {
  if (device === undefined) return false;
  loaded?.model.dispose();
  loaded = undefined;
  tuner?.reset();
  button.disabled = true;
  ftButton.disabled = true;
  for (const s of sources) s.disabled = true;
  showError('');
  resetProgress();
  setState('loading');
  status(`reading ${read.where}…`);
  try {
    let checkpoint;
    try {
      checkpoint = await openCheckpoint(read);
    } catch (e) {
      showError(`${read.where} is not a checkpoint folder this page can read`, e);
      await send({ ok: false, stage: 'open', error: errorText(e) });
      return false;
    }
    const tokenizer = checkpoint.tokenizer;
    if (tokenizer === undefined) {
      const e = new Error(`${read.where} has no tokenizer: tokenizer.json, vocab.json + merges.txt, or a character vocab.json`);
      showError('Cannot generate text', e);
      await send({ ok: false, stage: 'open', error: errorText(e) });
      return false;
    }
    try {
      const model = await createModel(device, checkpoint, { onProgress: showProgress });
      loaded = { model, tokenizer, where: read.where, read };
    } catch (e) {
      showError(`Loading ${read.where} into model ${spec.name} failed`, e);
      await send({ ok: false, stage: 'load', error: errorText(e) });
      return false;
    }
    button.disabled = false;
    ftButton.disabled = tuner === undefined;
    if (tuner !== undefined) ftStatus(`ready to fine-tune ${read.where}`);
    setState('ready');
    status(`ready: ${read.where} (${tokenizer.kind}) on ${adapterName(device)}`);
    return true;
  } finally {
    for (const s of sources) s.disabled = false;
  }
}

function adapterName(d: AcquiredDevice): string {
  return d.adapterInfo.description || d.adapterInfo.vendor || 'WebGPU';
}

const stopText: Readonly<Record<GenerateResult['stopReason'], string>> = {
  'max-new-tokens': 'reached the token limit',
  'stop-token': 'stopped at the end-of-text token',
  'context-full': `stopped: the context (${context} positions) is full`,
  callback: 'stopped',
};

/** Tokenizes the prompt, streams generated text into the page and reports it (report=). */
async function generate(l: Loaded): Promise<void> {
  const prompt = field('prompt').value;
  const ids = l.tokenizer.encode(prompt);
  if (ids.length === 0) throw new Error('type a prompt first');
  if (ids.length >= context) throw new Error(`the prompt is ${ids.length} tokens; model ${spec.name} holds ${context} positions`);
  const unknown = l.tokenizer.unknownChars?.() ?? [];
  const warning = unknown.length > 0 ? `; ${l.tokenizer.kind} has no ${unknown.map((c) => JSON.stringify(c)).join(', ')} (read as the unknown token)` : '';
  const sink = startOutput(prompt);
  const stream = l.tokenizer.stream();
  const stepLogits: number[][] = [];
  const margins: number[] = [];
  setState('generating');
  const start = performance.now();
  let first = 0;
  const r = await l.model.generate(ids, {
    maxNewTokens: Math.min(Number(field('max').value), context - ids.length),
    temperature: Number(field('temperature').value),
    topK: Number(field('topk').value),
    seed: Number(field('seed').value),
    stopIds: l.tokenizer.stopIds,
    onToken: (t, step) => {
      sink.appendData(stream.push(t));
      const now = performance.now();
      if (step === 0) first = now;
      status(step === 0 ? `first token after ${(now - start).toFixed(0)} ms` : `${step + 1} tokens, ${((1000 * step) / (now - first)).toFixed(1)} tokens/s`);
    },
    onLogits: (logits) => {
      margins.push(topMargin(logits));
      if (wantLogits) stepLogits.push(Array.from(logits));
    },
  });
  const decode = r.decodeMs.reduce((a, b) => a + b, 0);
  const rate = r.decodeMs.length > 0 ? `${((1000 * r.decodeMs.length) / decode).toFixed(1)} tokens/s` : '-';
  status(`prefill ${ids.length} tokens in ${r.prefillMs.toFixed(0)} ms; ${r.decodeMs.length} decode steps at ${rate}; ${r.tokens.length} new tokens, ${stopText[r.stopReason]}${warning}`);
  setState('done');
  if (report === null) return;
  // Kernels the last decode step dispatched (read before the forward run below replaces it).
  const decodeDispatches = l.model.runtime.session.stats.lastDispatches;
  // The prompt's logits from one forward run, for the charlm test's comparison with PyTorch.
  const prefillLogits = wantLogits ? Array.from((await l.model.forward({ tokens: ids })).logits.data) : [];
  await send({ ok: true, adapter: device === undefined ? '' : adapterName(device), prompt: ids, tokens: r.tokens, text: sink.data, stopReason: r.stopReason, prefillMs: r.prefillMs, decodeMs: r.decodeMs, margins, stepLogits, prefillLogits, decodeDispatches });
}

/** Top-1 minus top-2 logit: a greedy comparison across devices means something only where it is clear. */
function topMargin(logits: Float32Array): number {
  let a = -Infinity;
  let b = -Infinity;
  for (const v of logits) {
    if (v > a) [a, b] = [v, a];
    else if (v > b) b = v;
  }
  return a - b;
}

function runGenerate(): Promise<void> {
  if (loaded === undefined) return Promise.resolve();
  button.disabled = true;
  return generate(loaded)
    .catch(async (e: unknown) => {
      showError('Generation failed', e);
      await send({ ok: false, stage: 'generate', error: errorText(e) });
    })
    .finally(() => (button.disabled = false));
}

/** Fine-tunes the loaded model on the text box (finetune.ts) and reports each step (report=). */
function runFineTune(): Promise<void> {
  const l = loaded;
  if (l === undefined || tuner === undefined) return Promise.resolve();
  button.disabled = true;
  ftButton.disabled = true;
  setState('training');
  return tuner
    .run(l, Number(field('ft-steps').value), Number(field('ft-lr').value), wantLogits)
    .then(async (r) => {
      setState('trained');
      await send({ ok: true, kind: 'finetune', trainText: $<HTMLTextAreaElement>('ft-text').value, tokens: r.ids, batch: batchSize, seq: windowLength, seed: ftSeed, total: r.total, losses: r.steps.map((s) => s.loss), lrs: r.steps.map((s) => s.lr), gradNorms: r.steps.map((s) => s.gradNorm), weights: Object.fromEntries([...(r.weights ?? [])].map(([n, t]) => [n, Array.from(t.data)])) });
    })
    .catch(async (e: unknown) => {
      ftStatus(`fine-tuning failed: ${errorText(e)}`);
      showError('Fine-tuning failed', e);
      await send({ ok: false, stage: 'finetune', error: errorText(e) });
    })
    .finally(() => {
      button.disabled = false;
      ftButton.disabled = false;
    });
}

async function main(): Promise<void> {
  setState('idle');
  try {
    device = await acquireDevice();
  } catch (e) {
    for (const s of sources) s.disabled = true;
    ftStatus('fine-tuning needs WebGPU');
    showError('This browser cannot run the model: no WebGPU', e);
    await send({ ok: false, stage: 'device', error: errorText(e) });
    return;
  }
  status(`WebGPU: ${adapterName(device)}. Pick a checkpoint folder.`);
  if (createTrainer !== undefined) tuner = new FineTuner(device, createTrainer);
  else ftStatus(`model ${spec.name} was compiled without its training step: recompile with \`tfc compile MODEL.tfx --train -o out/web\` to fine-tune here`);
  ftButton.addEventListener('click', () => void runFineTune());
  field('folder').addEventListener('change', () => {
    const files = field('folder').files;
    if (files !== null && files.length > 0) void load(filesReader(files));
  });
  $('served').addEventListener('click', () => void load(urlReader(new URL(servedBase, location.href).href)));
  $<HTMLFormElement>('form').addEventListener('submit', (e) => {
    e.preventDefault();
    void runGenerate();
  });
  if (params.has('checkpoint') && (await load(urlReader(new URL(servedBase, location.href).href))) && params.get('autorun') === '1') {
    await runGenerate();
    // finetune=1: fine-tune on the text box, then generate again with the trained weights.
    if (params.get('finetune') === '1') {
      await runFineTune();
      await runGenerate();
    }
  }
}

void main();
