// Generation for several sequences at once over a paged KV cache (issue 16 item 1), on a model with
// the interface of examples/variants/gpt2-paged.tfx: inputs `tokens` i32[B, T], `lengths` i32[B],
// `table` i32[B, MP], `first_page` i32[B] and the pools `past.{l}.key/value` [NP, kv_heads, page, dh]; outputs `logits`
// [B, T, vocab] and `present.{l}.key/value` (the pools with the call's new tokens written: in
// place, the same buffers). The pools stay on the GPU between calls; a PageAllocator
// (pages.ts) hands each sequence pages as it grows and takes them back when it finishes.
//
// Continuous batching: up to `maxBatch` sequences decode together, one call per step (B = the
// sequences active, T = 1). A waiting request joins between steps, as soon as a row is free and
// the pool has pages for its prompt: its prompt runs as its own B = 1 call (T = prompt length) on
// the shared pool (every other sequence's pages are in no row of that call, so it leaves them alone). A sequence leaves when it has its tokens, meets a stop id, fills its
// context or its callback says stop; its pages go back to the pool at once.
import { RuntimeError } from './errors.js';
import { checkTokens, type GenerateOptions, sampleToken, seededRandom, type StopReason } from './generate.js';
import { PageAllocator } from './pages.js';
import { PagedPools, pagedGeometry } from './paged-pools.js';
import type { Session } from './session.js';

export { pagedGeometry } from './paged-pools.js';
export type { PagedGeometry } from './paged-pools.js';

/** A compiled paged-cache model (weights loaded) and how many positions one sequence may hold. */
export interface PagedModel {
  readonly session: Session;
  /** The model's context (its position table's rows): a sequence holds at most this many tokens, rounded down to whole pages. */
  readonly context: number;
  /**
   * The model's sliding window (its `window` constant), when it has one: pages wholly before a
   * sequence's window are freed as it grows. Not more than the compiled window's keys may be
   * dropped: give the compiled value (or none: every page is kept, the mask still applies).
   */
  readonly window?: number;
}

export interface PagedRequest {
  readonly prompt: ArrayLike<number>;
  /** This sequence's limit; default the options' `maxNewTokens` (100). */
  readonly maxNewTokens?: number;
}

/** One call of the model, as `onStep` sees it after the call returned. */
export interface PagedStep {
  readonly kind: 'prefill' | 'decode';
  /** The batch rows: sequence (request index), tokens it had cached before the call, its pages (from logical page firstPage on). */
  readonly rows: readonly { readonly seq: number; readonly length: number; readonly firstPage: number; readonly pages: readonly number[] }[];
  readonly dispatches: number;
  readonly allocator: PageAllocator;
}

export interface PagedGenerateOptions extends Pick<GenerateOptions, 'maxNewTokens' | 'temperature' | 'topK' | 'topP' | 'seed' | 'stopIds'> {
  /** Pages in the pool (NP), when no `allocator` is given. Default: room for every request's whole length. */
  readonly pages?: number;
  /** The pool's allocator (its page size must be the model's); it is left as it was found, also after an error. */
  readonly allocator?: PageAllocator;
  /** Sequences decoding together at most (default: all requests). */
  readonly maxBatch?: number;
  /** Called with each new token of a sequence (`index`: its position among that sequence's new tokens); return false to stop that sequence. */
  readonly onToken?: (seq: number, token: number, index: number) => void | boolean;
  /** Called after each call of the model (tests, tools). */
  readonly onStep?: (step: PagedStep) => void;
}

export interface PagedSequenceResult {
  readonly tokens: number[];
  readonly stopReason: StopReason;
}

export interface PagedResult {
  /** Per request, in the order given. */
  readonly sequences: readonly PagedSequenceResult[];
  /** Milliseconds of each prompt's call and of each decode step (all active sequences at once). */
  readonly prefillMs: readonly number[];
  readonly decodeMs: readonly number[];
  /** Rows (sequences) in each decode step, and the dispatches it took. */
  readonly decodeRows: readonly number[];
  readonly decodeDispatches: readonly number[];
}

interface Active {
  readonly seq: number;
  length: number;
  next: number;
  readonly random: () => number;
}

/**
 * Generates for every request, several at a time over one paged pool. At temperature 0 each
 * sequence's tokens are its greedy tokens alone; when sampling, each sequence has its own
 * generator seeded with `seed`, so it gets the tokens `generate` gives it alone with that seed.
 */
export async function generatePaged(model: PagedModel, requests: readonly PagedRequest[], opts: PagedGenerateOptions = {}): Promise<PagedResult> {
  const { session } = model;
  const geo = pagedGeometry(session.plan);
  const maxBatch = opts.maxBatch ?? Math.max(1, requests.length);
  if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new RuntimeError('input', `maxBatch must be a positive integer; got ${maxBatch}`);
  if (!Number.isInteger(model.context) || model.context < 1) throw new RuntimeError('input', `the model's context must be a positive integer; got ${model.context}`);
  const window = model.window;
  if (window !== undefined && !(Number.isInteger(window) && window >= 1)) throw new RuntimeError('input', `the window must be a positive integer; got ${window}`);
  // MP * page <= ctx: a sequence's pages must not reach past the position table.
  const capacity = Math.floor(model.context / geo.pageSize) * geo.pageSize;
  const spec = { name: session.plan.model, vocab: geo.vocab, context: capacity, cache: [] };
  const maxNew = requests.map((r) => r.maxNewTokens ?? opts.maxNewTokens ?? 100);
  requests.forEach((r, i) => {
    const n = maxNew[i] ?? 0;
    if (!Number.isInteger(n) || n < 0) throw new RuntimeError('input', `request ${i}: maxNewTokens must be a non-negative integer; got ${n}`);
    checkTokens(spec, { shape: [1, r.prompt.length], data: r.prompt }, 0);
  });
  const allocator =
    opts.allocator ?? new PageAllocator(opts.pages ?? Math.max(1, requests.reduce((s, r, i) => s + Math.ceil(Math.min(r.prompt.length + (maxNew[i] ?? 0), capacity) / geo.pageSize), 0)), geo.pageSize);
  // The pools start empty here, so pages held before would point at nothing.
  if (allocator.sequences.length > 0) throw new RuntimeError('input', `the allocator already holds pages for sequence(s) ${allocator.sequences.join(', ')}: give an empty one`);

  const pools = new PagedPools(session, allocator);

  /** One call on `rows` (each with T tokens); the pools are replaced by the call's; returns the logits. */
  const call = async (kind: PagedStep['kind'], rows: readonly Active[], tokens: readonly number[], T: number): Promise<Float32Array> => {
    const r = await pools.run(rows, tokens, T);
    opts.onStep?.({ kind, rows: rows.map((x) => ({ seq: x.seq, length: x.length, firstPage: allocator.firstPage(x.seq), pages: [...allocator.pagesOf(x.seq)] })), dispatches: session.stats.lastDispatches, allocator });
    const logits = r.outputs.get('logits');
    if (logits === undefined) throw new RuntimeError('plan', `model ${spec.name} has no output logits`);
    return logits.data instanceof Float32Array ? logits.data : Float32Array.from(logits.data);
  };

  const results: { tokens: number[]; stopReason: StopReason }[] = requests.map(() => ({ tokens: [], stopReason: 'max-new-tokens' }));
  const stops = new Set(opts.stopIds ?? []);
  const sampling: GenerateOptions = { temperature: opts.temperature ?? 1, topK: opts.topK ?? 0, topP: opts.topP ?? 1 };
  /** Takes `token` for sequence `a`; true when the sequence goes on. */
  const take = (a: Active, logits: Float32Array, row: number): boolean => {
    const res = results[a.seq];
    if (res === undefined) return false;
    const token = sampleToken(logits.subarray(row * geo.vocab, (row + 1) * geo.vocab), sampling, a.random);
    res.tokens.push(token);
    a.next = token;
    const goOn = opts.onToken?.(a.seq, token, res.tokens.length - 1);
    if (stops.has(token)) res.stopReason = 'stop-token';
    else if (goOn === false) res.stopReason = 'callback';
    else if (res.tokens.length >= (maxNew[a.seq] ?? 0)) res.stopReason = 'max-new-tokens';
    else if (a.length + 1 > capacity) res.stopReason = 'context-full'; // the token would sit at slot `length`
    else return true;
    return false;
  };

  const waiting = requests.map((_, i) => i).filter((i) => (maxNew[i] ?? 0) > 0);
  let active: Active[] = [];
  const prefillMs: number[] = [];
  const decodeMs: number[] = [];
  const decodeRows: number[] = [];
  const decodeDispatches: number[] = [];
  try {
    while (waiting.length > 0 || active.length > 0) {
      // Join: as many waiting sequences as there are rows and pages for their prompts.
      while (waiting.length > 0 && active.length < maxBatch) {
        const seq = waiting[0] ?? 0;
        const prompt = Array.from(requests[seq]?.prompt ?? []);
        // With sequences running, join only when the pool also keeps their next slots and this
        // sequence's first decode slot (else wait for pages they free); alone, reserve says why it cannot fit.
        const growth = active.reduce((n, x) => n + allocator.pagesFor(x.length + 1) - allocator.firstPage(x.seq) - allocator.pagesOf(x.seq).length, 0);
        if (active.length > 0 && allocator.pagesFor(prompt.length + 1) + growth > allocator.freeCount) break;
        waiting.shift();
        allocator.reserve(seq, prompt.length);
        const a: Active = { seq, length: 0, next: 0, random: seededRandom(opts.seed ?? 0) };
        active.push(a);
        const t0 = now();
        const logits = await call('prefill', [a], prompt, prompt.length);
        prefillMs.push(now() - t0);
        a.length = prompt.length;
        if (!take(a, logits, prompt.length - 1)) {
          allocator.release(seq);
          active = active.filter((x) => x !== a);
        }
      }
      if (active.length === 0) continue;
      // Slide: the next token (position `length`) sees positions from length - window + 1 on.
      if (window !== undefined) for (const a of active) allocator.trim(a.seq, a.length - window + 1);
      // Grow: every active sequence needs a slot for its next token.
      for (const a of active) allocator.reserve(a.seq, a.length + 1);
      const t0 = now();
      const logits = await call(
        'decode',
        active,
        active.map((a) => a.next),
        1,
      );
      decodeMs.push(now() - t0);
      decodeRows.push(active.length);
      decodeDispatches.push(session.stats.lastDispatches);
      const staying: Active[] = [];
      active.forEach((a, row) => {
        a.length++;
        if (take(a, logits, row)) staying.push(a);
        else allocator.release(a.seq); // leaves: its pages are free for the next sequence
      });
      active = staying;
    }
    return { sequences: results, prefillMs, decodeMs, decodeRows, decodeDispatches };
  } finally {
    for (const a of active) allocator.release(a.seq);
    pools.dispose();
  }
}

function now(): number {
  return globalThis.performance.now();
}
