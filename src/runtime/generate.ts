// Text generation shared by every target: the model's language-model roles (ModelSpec), token
// checks, seeded top-k / top-p sampling, and the prefill-then-decode loop (`generateTokens`) over a
// target's `TokenStepper`. WebGPU (src/runtime/host.ts: cache in GPU buffers) and CUDA
// (src/runtime-cuda/generate.ts: cache kept by the --serve launcher) differ only in the stepper.
import { RuntimeError } from './errors.js';
import type { HostTensor } from './session.js';
import { mulberry32 } from '../base/random.js';

/** What the generated module knows about its model (emitted by codegen/host/emit.ts). */
export interface ModelSpec {
  readonly name: string;
  /** The i32 [B, T] input of token ids, when the model has one. */
  readonly tokens?: string;
  readonly vocab?: number;
  /** Most positions (cached + new) the model may see; undefined when it declares none. */
  readonly context?: number;
  /** The [B, T, vocab] output `generate` samples from. */
  readonly logits?: string;
  /** KV-cache pairs: each run's `present` output becomes the next run's `past` input. */
  readonly cache: readonly { readonly past: string; readonly present: string }[];
  /** The dim counting cached positions (P in `f32[B, kv_heads, P, dh]`). */
  readonly pastDim?: string;
  /** Config constants compiled in that a checkpoint's config.json names (`from "key"`): checked at load. */
  readonly config?: Readonly<Record<string, { readonly value: number; readonly keys: readonly string[] }>>;
}

export interface GenerateOptions {
  /** New tokens to produce at most (default 100); generation also stops when the context is full. */
  readonly maxNewTokens?: number;
  /** 0 picks the most likely token (greedy); default 1. */
  readonly temperature?: number;
  /** Keep only the k most likely tokens (0: all). */
  readonly topK?: number;
  /** Keep the smallest set of tokens whose probability reaches p (1: all). */
  readonly topP?: number;
  /** Seed of the sampler's random numbers (default 0): the same seed gives the same text. */
  readonly seed?: number;
  /** Called with each new token as soon as it is sampled; return false to stop. */
  readonly onToken?: (token: number, step: number) => void | boolean | Promise<void | boolean>;
  /** Called with the logits of each step ([vocab] of the last position), for tests and tools. */
  readonly onLogits?: (logits: Float32Array, step: number) => void;
  /** Token ids that end generation (the tokenizer's EOS, `TextTokenizer.stopIds`); kept in `tokens`. */
  readonly stopIds?: readonly number[];
}

/** Why generation ended. */
export type StopReason = 'max-new-tokens' | 'stop-token' | 'context-full' | 'callback';

export interface GenerateResult {
  readonly tokens: number[];
  /** max-new-tokens, a stop token (EOS), the context limit reached, or onToken returned false. */
  readonly stopReason: StopReason;
  /** Milliseconds of the prefill run (prompt in, first logits out). */
  readonly prefillMs: number;
  /** Milliseconds of each decode step. */
  readonly decodeMs: number[];
}

/** mulberry32 (src/base/random.ts): a seed gives the same text in Node and browsers. */
export const seededRandom: (seed: number) => () => number = mulberry32;

/** The index of the largest of `values[start .. start + count)`, relative to `start` (the first one on ties). */
export function argmax(values: ArrayLike<number>, start = 0, count = values.length - start): number {
  let best = 0;
  for (let i = 1; i < count; i++) if ((values[start + i] ?? -Infinity) > (values[start + best] ?? -Infinity)) best = i;
  return best;
}

/** Picks a token from one row of logits: argmax at temperature 0, else top-k / top-p sampling. */
export function sampleToken(logits: ArrayLike<number>, opts: GenerateOptions, random: () => number): number {
  const temperature = opts.temperature ?? 1;
  const best = argmax(logits);
  if (temperature <= 0) return best;
  let ids = Array.from({ length: logits.length }, (_, i) => i).sort((a, b) => (logits[b] ?? 0) - (logits[a] ?? 0) || a - b);
  const topK = opts.topK ?? 0;
  if (topK > 0) ids = ids.slice(0, topK);
  const top = logits[best] ?? 0;
  let probs = ids.map((i) => Math.exp(((logits[i] ?? -Infinity) - top) / temperature));
  let sum = probs.reduce((a, b) => a + b, 0);
  const topP = opts.topP ?? 1;
  if (topP < 1) {
    let acc = 0;
    let keep = 0;
    while (keep < probs.length && acc < topP * sum) acc += probs[keep++] ?? 0;
    ids = ids.slice(0, Math.max(keep, 1));
    probs = probs.slice(0, Math.max(keep, 1));
    sum = probs.reduce((a, b) => a + b, 0);
  }
  let r = random() * sum;
  for (let i = 0; i < ids.length; i++) {
    r -= probs[i] ?? 0;
    if (r <= 0) return ids[i] ?? best;
  }
  return ids[ids.length - 1] ?? best;
}

/** Checks token ids and lengths before any dispatch; the messages name the limit broken. */
export function checkTokens(spec: ModelSpec, t: HostTensor, pastLength: number): void {
  const what = `input '${spec.tokens ?? 'tokens'}'`;
  if (t.shape.length !== 2) throw new RuntimeError('input', `${what} must be [batch, length]; got shape [${t.shape.join(',')}]`, 'TFC303');
  const [, length] = t.shape as [number, number];
  if (length < 1) throw new RuntimeError('input', `${what} is empty: give at least one token`, 'TFC303');
  if (spec.context !== undefined && pastLength + length > spec.context) {
    throw new RuntimeError(
      'input',
      `${what} has ${length} tokens${pastLength > 0 ? ` after ${pastLength} cached` : ''}: more than the context of ${spec.context} positions of model ${spec.name}`,
      'TFC303',
    );
  }
  for (let i = 0; i < t.data.length; i++) {
    const v = t.data[i] ?? NaN;
    if (!Number.isInteger(v) || v < 0 || (spec.vocab !== undefined && v >= spec.vocab)) {
      throw new RuntimeError('input', `${what} element ${i} is ${v}: token ids must be integers in [0, ${spec.vocab ?? '2^31'})`, 'TFC309');
    }
  }
}

/**
 * One target's forward runs for generation. `prefill` runs the prompt against an empty cache;
 * `step` runs one new token against the cache the previous call left (which it then replaces).
 * Both return the logits of the last position ([vocab]).
 */
export interface TokenStepper {
  prefill(prompt: Int32Array): Promise<Float32Array>;
  step(token: number): Promise<Float32Array>;
  /** Frees the cache; called once when generation ends, also after an error. */
  release(): void;
}

/**
 * Prefill, then sample and decode one token at a time until `maxNewTokens`, a full context or
 * `onToken` returning false. The same loop for every target, so that a seed gives the same text.
 */
export async function generateTokens(spec: ModelSpec, stepper: TokenStepper, prompt: ArrayLike<number>, gopts: GenerateOptions = {}): Promise<GenerateResult> {
  if (spec.tokens === undefined || spec.logits === undefined) {
    throw new RuntimeError('input', `model ${spec.name} has no token input and logits output to generate with`);
  }
  const promptTensor: HostTensor = { dtype: 'i32', shape: [1, prompt.length], data: Array.from({ length: prompt.length }, (_, i) => prompt[i] ?? NaN) };
  checkTokens(spec, promptTensor, 0);
  const prompt32 = Int32Array.from(Array.from({ length: prompt.length }, (_, i) => prompt[i] ?? NaN));
  const maxNew = gopts.maxNewTokens ?? 100;
  if (!Number.isInteger(maxNew) || maxNew < 0) throw new RuntimeError('input', `maxNewTokens must be a non-negative integer; got ${maxNew}`);
  const random = seededRandom(gopts.seed ?? 0);
  const out: number[] = [];
  const decodeMs: number[] = [];
  try {
    let t0 = now();
    let logits = await stepper.prefill(prompt32);
    const prefillMs = now() - t0;
    let position = prompt32.length;
    const stops = new Set(gopts.stopIds ?? []);
    let stopReason: StopReason = 'max-new-tokens';
    for (let step = 0; step < maxNew; step++) {
      gopts.onLogits?.(logits, step);
      const token = sampleToken(logits, gopts, random);
      out.push(token);
      const goOn = await gopts.onToken?.(token, step);
      if (stops.has(token)) {
        stopReason = 'stop-token';
        break;
      }
      if (goOn === false) {
        stopReason = 'callback';
        break;
      }
      if (step === maxNew - 1) break;
      // The token just sampled sits at `position`: running it needs position + 1 <= context.
      if (spec.context !== undefined && position + 1 > spec.context) {
        stopReason = 'context-full';
        break;
      }
      t0 = now();
      logits = await stepper.step(token);
      decodeMs.push(now() - t0);
      position++;
    }
    return { tokens: out, stopReason, prefillMs, decodeMs };
  } finally {
    stepper.release();
  }
}

function now(): number {
  return globalThis.performance.now();
}
