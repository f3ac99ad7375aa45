// `tfc run MODEL --weights W --prompt TEXT`: text generation on WebGPU through the same runtime a
// generated host module uses (src/runtime/host.ts), or with --target cuda|cuda-emu through the CUDA
// launcher in serve mode (src/runtime-cuda/generate.ts); one decode loop for both. Characters map to ids through vocab.json (next
// to the weights, or --vocab); generated text streams to stdout, a progress bar to stderr.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Module } from '../../grammar/ast.js';
import { evaluateConfig } from '../check/config.js';
import { DiagnosticSink } from '../diag/diagnostic.js';
import type { Graph } from '../graph/ir.js';
import { compilePlan } from '../compile/plan.js';
import { describeModel } from '../../codegen/host/model-shape.js';
import { acquireDevice } from '../runtime/device.js';
import { createLoadedModel, type LoadProgress } from '../runtime/host.js';
import type { GenerateOptions, GenerateResult } from '../runtime/generate.js';
import { targetLimitsOf } from '../runtime/target.js';
import { cudaLimits } from '../kernel/schedule.js';
import { openCudaLm, type StepTraffic } from '../runtime-cuda/generate.js';
import type { LauncherMode } from '../runtime-cuda/launcher.js';
import { UsageError } from './args.js';

export interface PromptOptions {
  readonly weights: string;
  readonly prompt: string;
  readonly maxNewTokens?: string;
  readonly temperature?: string;
  readonly topK?: string;
  readonly topP?: string;
  readonly seed?: string;
  readonly vocab?: string;
  /** Context length from the model's `ctx` config constant, when it has one. */
  readonly context?: number;
}

/** vocab.json: `{ "chars": ["\n", " ", ...], "unknown": 1 }`, id = index in `chars`. */
export interface CharVocab {
  readonly chars: readonly string[];
  readonly unknown: number;
}

export function readVocab(path: string): CharVocab {
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new UsageError(`cannot read vocabulary ${path}: ${e instanceof Error ? e.message : String(e)}`);
  }
  const chars = (v as { chars?: unknown }).chars;
  const unknown = (v as { unknown?: unknown }).unknown;
  if (!Array.isArray(chars) || !chars.every((c) => typeof c === 'string')) throw new UsageError(`${path}: expected { "chars": [...strings] }`);
  return { chars: chars as string[], unknown: typeof unknown === 'number' ? unknown : 0 };
}

function number(text: string | undefined, what: string, fallback: number, integer: boolean): number {
  if (text === undefined) return fallback;
  const v = Number(text);
  if (!Number.isFinite(v) || (integer && !Number.isInteger(v)) || v < 0) throw new UsageError(`bad ${what} '${text}': expected a non-negative ${integer ? 'integer' : 'number'}`);
  return v;
}

/** A one-line progress bar on stderr (rewritten in place with \r). */
function progressBar(err: (t: string) => void): (p: LoadProgress) => void {
  const label = { download: 'reading weights', compile: 'compiling kernels', upload: 'uploading weights', ready: 'ready' } as const;
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

async function openWebGpu(g: Graph, weights: string, context: number | undefined, err: (t: string) => void): Promise<PromptModel> {
  const dev = await acquireDevice();
  const plan = compilePlan(g, { target: targetLimitsOf(dev) });
  const spec = { name: plan.model, ...describeModel(plan), ...(context !== undefined ? { context } : {}) };
  const model = await createLoadedModel(dev, plan, spec, weights, { onProgress: progressBar(err) });
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

/**
 * Streams generated text to `io.out` (the prompt first), a summary to `io.err`. `target` picks the
 * runtime: WebGPU's host-module runtime, or the CUDA launcher in serve mode (nvcc or emulator);
 * tokenizing, sampling and the decode loop are the same (src/runtime/generate.ts).
 */
export async function runPrompt(g: Graph, o: PromptOptions, io: { out: (t: string) => void; err: (t: string) => void }, target: 'webgpu' | LauncherMode = 'webgpu'): Promise<void> {
  const vocabPath = o.vocab ?? join(dirname(o.weights), 'vocab.json');
  if (!existsSync(vocabPath)) throw new UsageError(`no vocabulary at ${vocabPath}: put vocab.json next to the weights or pass --vocab`);
  const vocab = readVocab(vocabPath);
  const maxNewTokens = number(o.maxNewTokens, '--max-new-tokens', 100, true);
  const temperature = number(o.temperature, '--temperature', 0.8, false);
  const seed = number(o.seed, '--seed', 0, true);
  const topK = number(o.topK, '--top-k', 0, true);
  const topP = number(o.topP, '--top-p', 1, false);
  const ids = [...o.prompt].map((ch) => {
    const i = vocab.chars.indexOf(ch);
    return i >= 0 ? i : vocab.unknown;
  });
  const model = target === 'webgpu' ? await openWebGpu(g, o.weights, o.context, io.err) : await openCuda(g, o.weights, o.context, target, io.err);
  try {
    io.out(o.prompt);
    const r = await model.generate(ids, {
      maxNewTokens,
      temperature,
      seed,
      topK,
      topP,
      onToken: (t) => io.out(vocab.chars[t] ?? '?'),
    });
    io.out('\n');
    const decode = r.decodeMs.reduce((a, b) => a + b, 0);
    io.err(
      `tfc run: ${model.name}: prefill ${ids.length} tokens in ${r.prefillMs.toFixed(0)} ms; ${r.decodeMs.length} decode steps at ` +
        `${r.decodeMs.length > 0 ? ((1000 * r.decodeMs.length) / decode).toFixed(1) : '-'} tokens/s (${model.where})\n`,
    );
    const note = model.note();
    if (note !== undefined) io.err(`${note}\n`);
  } finally {
    await model.dispose();
  }
}

/** The model's context length: its `ctx` (or `context`) config constant, after --set. */
export function contextOf(module: Module | undefined, overrides: ReadonlyMap<string, number>): number | undefined {
  if (module === undefined) return undefined;
  const c = evaluateConfig(module, overrides, new DiagnosticSink()).constants;
  const v = c.get('ctx') ?? c.get('context');
  return v !== undefined && v.isInt ? v.value : undefined;
}
