// Greedy decoding of one sequence on a slot-cache model (a cache of S slots per row, `lengths[b]`
// of them filled, the T new tokens written at slots lengths[b] + t: examples/charlm/charlm-slots.tfx,
// examples/variants/gpt2-batched.tfx), plainly or speculatively (issue 16 item 5): a draft model
// proposes k tokens one at a time, the target checks all of them in one call of k + 1 tokens
// (logits at every drafted position), the longest prefix on which they agree is kept plus the
// target's own next token, and both caches roll back by lowering their length: the rejected
// slots are simply overwritten later, nothing is copied. The tokens are the target's greedy
// tokens by construction (each kept token is the target's argmax given the kept prefix).
import { RuntimeError } from './errors.js';
import { argmax } from './generate.js';
import type { HostTensor, Session } from './session.js';

/** A compiled slot-cache model: its session (weights loaded) and the cache geometry. */
export interface SlotModel {
  readonly session: Session;
  readonly layers: number;
  /** Key/value heads and head width of one cache entry. */
  readonly kvHeads: number;
  readonly headDim: number;
  /** Cache slots per row (S). */
  readonly slots: number;
  readonly vocab: number;
}

/** One row's cache on the host: past.{l}.key/value [1, kvHeads, S, headDim] and how many slots are filled. */
export class SlotCache {
  readonly tensors = new Map<string, Float32Array>();
  length = 0;
  constructor(readonly model: SlotModel) {
    for (let l = 0; l < model.layers; l++) {
      for (const kv of ['key', 'value']) this.tensors.set(`past.${l}.${kv}`, new Float32Array(model.kvHeads * model.slots * model.headDim));
    }
  }

  /**
   * Runs `tokens` at slots length .. length + T - 1 and stores their keys and values; returns the
   * logits [T, vocab] row-major. `length` is not advanced: the caller keeps the slots it accepts.
   */
  async forward(tokens: readonly number[]): Promise<Float32Array> {
    const m = this.model;
    if (tokens.length === 0) throw new RuntimeError('input', 'forward needs at least one token');
    if (this.length + tokens.length > m.slots) {
      throw new RuntimeError('input', `the cache has ${m.slots} slots; ${this.length} are filled and ${tokens.length} more do not fit`);
    }
    const inputs = new Map<string, HostTensor>([
      ['tokens', { dtype: 'i32', shape: [1, tokens.length], data: tokens }],
      ['lengths', { dtype: 'i32', shape: [1], data: [this.length] }],
    ]);
    for (const [name, t] of this.tensors) inputs.set(name, { shape: [1, m.kvHeads, m.slots, m.headDim], data: t });
    const r = await m.session.run(inputs);
    for (const [name, t] of this.tensors) {
      const present = r.outputs.get(name.replace('past.', 'present.'));
      if (present === undefined) throw new RuntimeError('plan', `the model has no output ${name.replace('past.', 'present.')}`);
      t.set(present.data);
    }
    const logits = r.outputs.get('logits');
    if (logits === undefined) throw new RuntimeError('plan', 'the model has no output logits');
    return Float32Array.from(logits.data);
  }
}

/** The index of the largest of `logits[row * vocab .. + vocab)` (the first one on ties). */
export function argmaxRow(logits: ArrayLike<number>, row: number, vocab: number): number {
  return argmax(logits, row * vocab, vocab);
}

/** `steps` greedy tokens after `prompt`, one target call per token after the prompt's. */
export async function greedyDecode(target: SlotModel, prompt: readonly number[], steps: number): Promise<{ readonly tokens: number[]; readonly calls: number }> {
  const cache = new SlotCache(target);
  let logits = await cache.forward(prompt);
  cache.length = prompt.length;
  const tokens = [argmaxRow(logits, prompt.length - 1, target.vocab)];
  let calls = 1;
  while (tokens.length < steps) {
    logits = await cache.forward([tokens[tokens.length - 1] ?? 0]);
    cache.length++;
    calls++;
    tokens.push(argmaxRow(logits, 0, target.vocab));
  }
  return { tokens: tokens.slice(0, steps), calls };
}

export interface SpeculativeResult {
  readonly tokens: number[];
  /** Draft tokens proposed and accepted (acceptance rate = accepted / drafted). */
  readonly drafted: number;
  readonly accepted: number;
  readonly targetCalls: number;
  readonly draftCalls: number;
}

/**
 * `steps` greedy tokens of `target` after `prompt`, `k` drafted by `draft` per target call. The
 * draft must share the target's vocabulary; any draft gives the same tokens, a better one fewer
 * target calls.
 */
export async function speculativeDecode(target: SlotModel, draft: SlotModel, prompt: readonly number[], steps: number, k: number): Promise<SpeculativeResult> {
  if (!(k >= 1)) throw new RuntimeError('input', `speculative decoding needs k >= 1 drafted tokens, got ${k}`);
  if (draft.vocab !== target.vocab) throw new RuntimeError('input', `the draft's vocabulary (${draft.vocab}) is not the target's (${target.vocab})`);
  const t = new SlotCache(target);
  const d = new SlotCache(draft);
  const first = await t.forward(prompt);
  t.length = prompt.length;
  await d.forward(prompt);
  d.length = prompt.length;
  const tokens = [argmaxRow(first, prompt.length - 1, target.vocab)];
  let [drafted, accepted, targetCalls, draftCalls] = [0, 0, 1, 1];
  // Tokens the draft has not consumed yet besides the last kept one (after a fully accepted round,
  // its last proposal), fed with it in its next call.
  let pending: number[] = [];
  while (tokens.length < steps) {
    const last = tokens[tokens.length - 1] ?? 0;
    // The verify call needs k + 1 slots; near the end of the cache, draft fewer.
    const kk = Math.min(k, target.slots - t.length - 1, draft.slots - d.length - pending.length - 1);
    if (kk < 1) throw new RuntimeError('input', `the cache (${target.slots} slots) is full after ${t.length} tokens`);
    const base = d.length;
    const proposals: number[] = [];
    let feed = [...pending, last];
    for (let i = 0; i < kk; i++) {
      const lg = await d.forward(feed);
      draftCalls++;
      d.length += feed.length;
      const next = argmaxRow(lg, feed.length - 1, draft.vocab);
      proposals.push(next);
      feed = [next];
    }
    // The target scores `last` and every proposal in one call: row i predicts the token after them.
    const lg = await t.forward([last, ...proposals]);
    targetCalls++;
    let n = 0;
    while (n < kk && proposals[n] === argmaxRow(lg, n, target.vocab)) n++;
    const bonus = argmaxRow(lg, n, target.vocab);
    tokens.push(...proposals.slice(0, n), bonus);
    drafted += kk;
    accepted += n;
    // Roll back: the target keeps last and the n accepted proposals; the draft what it consumed of them.
    t.length += n + 1;
    d.length = base + pending.length + Math.min(n + 1, kk);
    pending = n === kk ? [proposals[kk - 1] ?? 0] : [];
  }
  return { tokens: tokens.slice(0, steps), drafted, accepted, targetCalls, draftCalls };
}
