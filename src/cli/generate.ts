// `tfc run MODEL --checkpoint DIR --prompt TEXT` (or --weights W): text generation on WebGPU through
// the same runtime a generated host module uses (src/runtime/host.ts), or with --target
// cuda|cuda-emu through the CUDA launcher in serve mode (src/runtime-cuda/generate.ts); one decode
// loop for both. Text maps to ids through the checkpoint's tokenizer (src/runtime/tokenizer.ts:
// tokenizer.json, GPT-2's vocab.json + merges.txt, or a character vocab.json); generation stops at
// EOS; text streams to stdout as whole characters, a progress bar and a summary go to stderr.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Graph } from '../graph/ir.js';
import { compilePlan } from '../compile/plan.js';
import { describeModel } from '../../codegen/host/model-shape.js';
import { acquireDevice } from '../runtime/device.js';
import { createLoadedModel, type LoadProgress } from '../runtime/host.js';
import type { GenerateOptions, GenerateResult, StopReason } from '../runtime/generate.js';
import { targetLimitsOf } from '../runtime/target.js';
import { type TextTokenizer, TokenizerError, loadTokenizer, tokenizerFromBpeFiles, tokenizerFromChars } from '../runtime/tokenizer.js';
import { cudaLimits } from '../kernel/schedule/schedule.js';
import { openCudaLm, type StepTraffic } from '../runtime-cuda/generate.js';
import type { LauncherMode } from '../runtime-cuda/launcher.js';
import { UsageError } from './args.js';
import { oneWeightsFile } from './checkpoint.js';

export interface PromptOptions {
  /** Weight files (the shards of a checkpoint; none for a model without weights). */
  readonly weights: readonly string[];
  /** A checkpoint folder: its tokenizer files (tokenizer.json, or vocab.json + merges.txt). */
  readonly checkpoint?: string;
  readonly prompt: string;
  readonly maxNewTokens?: string;
  readonly temperature?: string;
  readonly topK?: string;
  readonly topP?: string;
  readonly seed?: string;
  readonly vocab?: string;
  /** Context length (the model's `limit`, or a `ctx`/`context` config constant). */
  readonly context?: number;
}

/**
 * The tokenizer of a prompt run: --vocab FILE (a character vocab.json, or vocab.json with
 * merges.txt beside it), else the checkpoint folder's files, else vocab.json next to the weights.
 */
export async function promptTokenizer(o: Pick<PromptOptions, 'vocab' | 'checkpoint' | 'weights'>): Promise<TextTokenizer> {
  const folder = o.vocab !== undefined ? undefined : (o.checkpoint ?? (o.weights[0] !== undefined ? dirname(o.weights[0]) : undefined));
  const reader = (dir: string) => async (name: string): Promise<string | undefined> => {
    const path = join(dir, name);
    return existsSync(path) ? readFileSync(path, 'utf8') : undefined;
  };
  try {
    if (o.vocab !== undefined) {
      if (!existsSync(o.vocab)) throw new UsageError(`vocabulary '${o.vocab}' does not exist`);
      const dir = dirname(o.vocab);
      const merges = join(dir, 'merges.txt');
      const vocab = JSON.parse(readFileSync(o.vocab, 'utf8')) as unknown;
      return existsSync(merges) && !(typeof vocab === 'object' && vocab !== null && 'chars' in vocab)
        ? tokenizerFromBpeFiles(vocab, readFileSync(merges, 'utf8'), {}, ...(await configsIn(reader(dir))))
        : tokenizerFromChars(vocab);
    }
    const t = folder === undefined ? undefined : await loadTokenizer(reader(folder));
    if (t === undefined) {
      throw new UsageError(
        folder === undefined
          ? 'no tokenizer: pass --checkpoint DIR (tokenizer.json, or vocab.json + merges.txt) or --vocab FILE'
          : `no tokenizer in ${folder}: it has no tokenizer.json or vocab.json (pass --vocab FILE)`,
      );
    }
    return t;
  } catch (e) {
    if (e instanceof TokenizerError || e instanceof SyntaxError) throw new UsageError(`cannot use the tokenizer: ${e.message}`);
    throw e;
  }
}

async function configsIn(read: (name: string) => Promise<string | undefined>): Promise<unknown[]> {
  const out: unknown[] = [];
  for (const name of ['generation_config.json', 'config.json']) {
    const text = await read(name);
    if (text !== undefined) out.push(JSON.parse(text) as unknown);
  }
  return out;
}

function number(text: string | undefined, what: string, fallback: number, integer: boolean): number {
  if (text === undefined) return fallback;
  const v = Number(text);
  if (!Number.isFinite(v) || (integer && !Number.isInteger(v)) || v < 0) throw new UsageError(`bad ${what} '${text}': expected a non-negative ${integer ? 'integer' : 'number'}`);
  return v;
}

/** A one-line progress bar on stderr (rewritten in place with \r). */
function progressBar(err: (t: string) => void): (p: LoadProgress) => void {
  const label = { download: 'reading weights', compile: 'compiling kernels', warmup: 'warming up kernels', upload: 'uploading weights', ready: 'ready' } as const;
  return (p) => {
    const frac = p.total > 0 ? Math.min(1, p.done / p.total) : 1;
    const width = 24;
    const full = Math.round(frac * width);
    err(`\r${label[p.phase].padEnd(18)} [${'#'.repeat(full)}${'.'.repeat(width - full)}] ${(frac * 100).toFixed(0).padStart(3)}%`);
    if (p.phase === 'ready') err('\n');
  };
}

/** A loaded model `runPrompt` streams from: WebGPU's (host-module runtime) or CUDA's (serve launcher). */
interface PromptModel {
  readonly name: string;
  /** For the summary line: the adapter or GPU. */
  readonly where: string;
  generate(ids: readonly number[], opts: GenerateOptions): Promise<GenerateResult>;
  /** One more summary line (CUDA: host<->device bytes per step), or undefined. */
  note(): string | undefined;
  dispose(): Promise<void>;
}

async function openWebGpu(g: Graph, weights: readonly string[], context: number | undefined, err: (t: string) => void): Promise<PromptModel> {
  const dev = await acquireDevice();
  const plan = compilePlan(g, { target: targetLimitsOf(dev) });
  const spec = { name: plan.model, ...describeModel(plan), ...(context !== undefined ? { context } : {}) };
  const model = await createLoadedModel(dev, plan, spec, [...weights], { onProgress: progressBar(err) });
  return {
    name: plan.model,
    where: dev.adapterInfo.description || dev.adapterInfo.device || 'webgpu',
    generate: (ids, opts) => model.generate(ids, opts),
    note: () => undefined,
    dispose: () => Promise.resolve(model.dispose()),
  };
}

async function openCuda(g: Graph, weights: string, context: number | undefined, mode: LauncherMode, err: (t: string) => void): Promise<PromptModel> {
  const plan = compilePlan(g, { target: cudaLimits });
  const spec = { name: plan.model, ...describeModel(plan), ...(context !== undefined ? { context } : {}) };
  err(`${mode === 'emu' ? 'building the launcher (g++, CPU emulator)' : 'building the launcher (nvcc)'} and uploading weights...\n`);
  const lm = await openCudaLm(plan, spec, weights, mode);
  return {
    name: plan.model,
    where: lm.where,
    generate: (ids, opts) => lm.generate(ids, opts),
    note: () => {
      const pre = lm.traffic.find((t) => t.kind === 'prefill');
      const dec = lm.traffic.filter((t) => t.kind === 'decode');
      const max = (f: (t: StepTraffic) => number): number => Math.max(0, ...dec.map(f));
      return (
        `tfc run: host<->device bytes (launcher counters): weights ${lm.weightBytes} in once; prefill ${pre?.h2dBytes ?? 0} in, ${pre?.d2hBytes ?? 0} out; ` +
        `each decode step at most ${max((t) => t.h2dBytes)} in, ${max((t) => t.d2hBytes)} out (the KV cache stays on the device)`
      );
    },
    dispose: () => lm.close(),
  };
}

/** What the summary line says about why generation ended. */
const stopText: Readonly<Record<StopReason, string>> = {
  'max-new-tokens': 'reached --max-new-tokens',
  'stop-token': 'stopped at the end-of-text token',
  'context-full': 'stopped: the context is full',
  callback: 'stopped',
};

/**
 * Streams generated text to `io.out` (the prompt first), a summary to `io.err`. `target` picks the
 * runtime: WebGPU's host-module runtime, or the CUDA launcher in serve mode (nvcc or emulator);
 * tokenizing, sampling and the decode loop are the same (src/runtime/generate.ts).
 */
export async function runPrompt(g: Graph, o: PromptOptions, io: { out: (t: string) => void; err: (t: string) => void }, target: 'webgpu' | LauncherMode = 'webgpu'): Promise<void> {
  const tokenizer = await promptTokenizer(o);
  const maxNewTokens = number(o.maxNewTokens, '--max-new-tokens', 100, true);
  const temperature = number(o.temperature, '--temperature', 0.8, false);
  const seed = number(o.seed, '--seed', 0, true);
  const topK = number(o.topK, '--top-k', 0, true);
  const topP = number(o.topP, '--top-p', 1, false);
  const ids = tokenizer.encode(o.prompt);
  const unknown = tokenizer.unknownChars?.() ?? [];
  if (unknown.length > 0) io.err(`tfc run: warning: ${tokenizer.kind} has no ${unknown.map((c) => JSON.stringify(c)).join(', ')}: the prompt uses the unknown token there\n`);
  if (o.context !== undefined && ids.length > o.context) {
    throw new UsageError(`the prompt is ${ids.length} tokens, more than the context of ${o.context} positions of model ${g.name}`);
  }
  const model = target === 'webgpu' ? await openWebGpu(g, o.weights, o.context, io.err) : await openCuda(g, oneWeightsFile(o.weights, target === 'emu' ? 'cuda-emu' : 'cuda'), o.context, target, io.err);
  try {
    io.out(o.prompt);
    const stream = tokenizer.stream();
    const r = await model.generate(ids, {
      maxNewTokens,
      temperature,
      seed,
      topK,
      topP,
      stopIds: tokenizer.stopIds,
      onToken: (t) => io.out(stream.push(t)),
    });
    io.out('\n');
    const decode = r.decodeMs.reduce((a, b) => a + b, 0);
    io.err(
      `tfc run: ${model.name}: prefill ${ids.length} tokens in ${r.prefillMs.toFixed(0)} ms; ${r.decodeMs.length} decode steps at ` +
        `${r.decodeMs.length > 0 ? ((1000 * r.decodeMs.length) / decode).toFixed(1) : '-'} tokens/s (${model.where}); ${r.tokens.length} new tokens, ${stopText[r.stopReason]}` +
        `${r.stopReason === 'context-full' && o.context !== undefined ? ` (${o.context} positions)` : ''}\n`,
    );
    const note = model.note();
    if (note !== undefined) io.err(`${note}\n`);
  } finally {
    await model.dispose();
  }
}
