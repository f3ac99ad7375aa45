// `tfc bench decode`: one-token decode steps of GPT-2 with a KV cache after a prefill of T tokens:
// the contiguous cache (examples/variants/gpt2-kv.tfx: tfc fused and --no-fuse, the cache grown by
// a concat each step) against the paged cache (examples/variants/gpt2-paged.tfx: `tfc-paged`, pages
// of 16 written in place; `tfc-paged-sw`, the same with a sliding window, `--set window=W`,
// default 256, whose pages before the window are freed so a step reads the window's pages only)
// and the int8 cache (examples/variants/gpt2-kv-int8.tfx: `tfc-int8`, i8 values + f32 scales per
// (token, head), grown by a concat as `tfc`'s; checked against the f32 oracle, see INT8_TOL).
// Every system keeps its cache on the GPU between steps, as `generate` and `generatePaged` do; only
// the logits are read back. The systems' sessions are all open at once and their steps
// interleave (step i of every system, rotating which goes first), so that a change in machine
// load hits every system alike: run one after the other, the fused/unfused ratio of GPT-2 small
// swung from 0.78x to 1.24x a minute apart on this 2-core machine.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { evalCondition, type Plan } from '../kernel/plan/plan.js';
import { lowerBound } from '../kernel/analysis/report.js';
import { PageAllocator } from '../runtime/pages.js';
import { PagedPools } from '../runtime/paged-pools.js';
import type { DeviceTensor, HostTensor, RunResult, Session, StepTiming } from '../runtime/session.js';
import { createSession } from '../runtime/session.js';
import { targetLimitsOf } from '../runtime/target.js';
import { type BenchOptions, benchCompilation, benchPlan, repoRoot, wanted } from './bench.js';
import { configOverrides, exportGpt2, readDir } from './bench-model.js';
import { benchDevice } from './bench-peers.js';
import { type CaseResult, type SystemResult, Progress, compare, median } from './bench-report.js';

/** Tokens per page of the paged rows (gpt2-paged.tfx's default). */
const PAGE = 16;
/** The paged+SW row's window when `--set window` does not give one. */
const DEFAULT_WINDOW = 256;
/**
 * The int8 row's tolerance (max |logit error| / max |logit|) against the f32 oracle: quantizing
 * the cache itself moves the logits by 2.4e-3..5.6e-3 of max |logit| (docs/dtypes.md, "the cost
 * of quantizing": dh 64 and dh 16, in float64 as on WebGPU), so 1e-2 passes that and still
 * flags a broken kernel (errors of the logits' own size).
 */
const INT8_TOL = 1e-2;

/** One system's model with its cache on the GPU: the prompt, then one token per step. */
interface Decoder {
  readonly plan: Plan;
  readonly session: Session;
  prefill(prompt: readonly number[]): Promise<RunResult>;
  step(token: number, timing: boolean): Promise<RunResult>;
  dispose(): void;
}

/** One system's live decode: its decoder, its samples. */
interface LiveDecode {
  readonly system: string;
  readonly decoder: Decoder;
  readonly err: { maxAbsErr: number; relErr: number };
  readonly wallMs: number[];
  readonly gpuMs: number[];
  /** Dispatches of the last measured step (a decode step's, not the plan's steps). */
  dispatches: number;
  /** Per plan step, the fastest time over the measured steps (ms) and its kernel. */
  readonly stepMin: { kernel: string; ms: number }[];
}

// The prompt goes in chunks of at most 512 tokens (each chunk's logits [1, chunk, vocab] must fit
// one storage binding: GPT-2's 1024 x 50257 f32 logits are 206 MB, over lavapipe's 128 MiB).
const CHUNK = 512;

/** The prompt in chunks of CHUNK tokens; the last chunk's result. */
async function prefillChunked(prompt: readonly number[], run: (ids: readonly number[], timing: boolean) => Promise<RunResult>): Promise<RunResult> {
  let r: RunResult | undefined;
  for (let at = 0; at < prompt.length; at += CHUNK) r = await run(prompt.slice(at, at + CHUNK), false);
  if (r === undefined) throw new Error('empty prompt');
  return r;
}

/**
 * gpt2-kv.tfx (or gpt2-kv-int8.tfx, whose cache pairs add the scales: `kinds`) from the empty
 * cache `empty` (past.* [1, heads, 0, ...]): present.* kept on the device and bound as the next
 * run's past.* (the old cache freed).
 */
function contiguousDecoder(session: Session, layers: number, kinds: readonly string[], empty: ReadonlyMap<string, HostTensor>): Decoder {
  const names = Array.from({ length: layers }, (_, l) => kinds.map((kv) => `${l}.${kv}`)).flat();
  const keep = names.map((n) => `present.${n}`);
  let cache = new Map<string, HostTensor | DeviceTensor>();
  for (const n of names) {
    const t = empty.get(`past.${n}`);
    if (t === undefined) throw new Error(`oracle: no past.${n}`);
    cache.set(`past.${n}`, t);
  }
  const run = async (ids: readonly number[], timing: boolean): Promise<RunResult> => {
    const r = await session.run(new Map([['tokens', { dtype: 'i32', shape: [1, ids.length], data: ids }], ...cache]), { keepOnDevice: keep, ...(timing ? { timing } : {}) });
    for (const t of cache.values()) if ('buffer' in t) t.buffer.destroy();
    cache = new Map(names.map((n) => [`past.${n}`, r.deviceOutputs.get(`present.${n}`) as DeviceTensor]));
    return r;
  };
  return {
    plan: session.plan,
    session,
    prefill: (prompt) => prefillChunked(prompt, run),
    step: (token, timing) => run([token], timing),
    dispose: () => {
      for (const t of cache.values()) if ('buffer' in t) t.buffer.destroy();
    },
  };
}

/** gpt2-kv-int8.tfx's empty cache: i8 values shaped as the f32 oracle's past.*, f32 scales [..., 0, 1]. */
function emptyInt8Cache(layers: number, f32Empty: ReadonlyMap<string, HostTensor>): Map<string, HostTensor> {
  const out = new Map<string, HostTensor>();
  for (let l = 0; l < layers; l++) {
    for (const kv of ['key', 'value']) {
      const t = f32Empty.get(`past.${l}.${kv}`);
      if (t === undefined) throw new Error(`oracle: no past.${l}.${kv}`);
      out.set(`past.${l}.${kv}`, { dtype: 'i8', shape: t.shape, data: [] });
      out.set(`past.${l}.${kv}_scale`, { dtype: 'f32', shape: [...t.shape.slice(0, -1), 1], data: [] });
    }
  }
  return out;
}

/** gpt2-paged.tfx, one sequence over a pool of `pages` pages; with `window`, pages before it are freed each step. */
function pagedDecoder(session: Session, pages: number, window: number | undefined): Decoder {
  const allocator = new PageAllocator(pages, PAGE);
  const pools = new PagedPools(session, allocator);
  let length = 0;
  const run = async (ids: readonly number[], timing: boolean): Promise<RunResult> => {
    allocator.reserve(0, length + ids.length);
    const r = await pools.run([{ seq: 0, length }], ids, ids.length, timing ? { timing } : {});
    length += ids.length;
    return r;
  };
  return {
    plan: session.plan,
    session,
    prefill: (prompt) => prefillChunked(prompt, run),
    step: (token, timing) => {
      if (window !== undefined) allocator.trim(0, length - window + 1);
      return run([token], timing);
    },
    dispose: () => pools.dispose(),
  };
}

/** Tokens/s of one-token decode steps with a KV cache, contiguous and paged, after a prefill of T tokens. */
export async function benchDecode(o: BenchOptions, given: Readonly<Record<string, number>>, steps: number): Promise<CaseResult[]> {
  const dev = await benchDevice();
  // `window` is the paged+SW row's; the contiguous model and the oracle have none.
  const { window: windowSet, ...set } = given;
  const window = windowSet ?? DEFAULT_WINDOW;
  const systems = ['tfc', 'tfc --no-fuse', 'tfc-paged', 'tfc-paged-sw', 'tfc-int8'].filter((s) => wanted(o, s));
  const name = `gpt2 decode P=${set['T']} +${steps}`; // contiguous, paged and int8 caches
  const progress = new Progress(systems.length * 2, o.err, o.isTty);
  const P = set['T'] ?? 0;
  // The first checked step (position P) sees positions P - window + 1 .. P: with window <= P it
  // differs from full attention, so the SW row is checked against the oracle with that window.
  const windowed = systems.includes('tfc-paged-sw') && window <= P;
  let dir: string;
  let swDir: string | undefined;
  try {
    dir = exportGpt2(set, true);
    swDir = windowed ? exportGpt2({ ...set, window }, true) : undefined;
  } catch (e) {
    // The oracle could not run (e.g. P + steps beyond ctx): every system fails with its message.
    progress.end();
    const note = e instanceof Error ? (e.message.split('\n').find((l) => l.includes('Error')) ?? e.message.split('\n')[0] ?? '') : String(e);
    return [{ suite: 'decode', name, params: { ...given, steps }, results: systems.map((system) => ({ system, status: 'failed' as const, timeSource: 'wall', wallMs: [], note: `the PyTorch oracle failed: ${note.trim()}` })) }];
  }
  const weights = readDir(dir, 'weights.safetensors');
  const prefillIn = readDir(dir, 'inputs.safetensors');
  const prompt = Array.from(prefillIn.get('tokens')?.data ?? [], Number);
  const decodeIn = readDir(dir, 'decode_inputs.safetensors');
  const want = (d: string): ArrayLike<number> => {
    const w = readDir(d, 'decode_expected.safetensors').get('logits');
    if (w === undefined) throw new Error('oracle: no decode logits');
    return w.data;
  };
  const decodeWant = want(dir);
  const swWant = swDir === undefined ? decodeWant : want(swDir);
  const file = (f: string): string => join(repoRoot, 'examples', 'variants', f);
  const layers = set['layers'] ?? 1;
  const timestamps = dev.features.has('timestamp-query');
  const firstToken = decodeIn.get('tokens')?.data[0] ?? 0;
  const failed = (system: string, e: unknown): SystemResult => ({ system, status: 'failed', timeSource: 'wall', wallMs: [], note: e instanceof Error ? (e.message.split('\n')[0] ?? '') : String(e) });
  // Pages for the prompt, the checked step and the measured ones (and one spare).
  const pages = Math.ceil((P + steps + 2) / PAGE) + 1;

  const open = async (system: string): Promise<Decoder> => {
    const paged = system.startsWith('tfc-paged');
    const int8 = system === 'tfc-int8';
    const f = file(paged ? 'gpt2-paged.tfx' : int8 ? 'gpt2-kv-int8.tfx' : 'gpt2-kv.tfx');
    const overrides = configOverrides(set);
    if (system === 'tfc-paged-sw') overrides.set('window', window);
    const plan = benchPlan(readFileSync(f, 'utf8'), f, overrides, system !== 'tfc --no-fuse', targetLimitsOf(dev));
    const session = await createSession(dev, plan);
    session.loadWeights(weights);
    if (paged) return pagedDecoder(session, pages, system === 'tfc-paged-sw' ? window : undefined);
    return int8 ? contiguousDecoder(session, layers, ['key', 'key_scale', 'value', 'value_scale'], emptyInt8Cache(layers, prefillIn)) : contiguousDecoder(session, layers, ['key', 'value'], prefillIn);
  };

  // Open every system, prefill, and check its first decode step against PyTorch.
  const slots: (LiveDecode | SystemResult)[] = [];
  for (const system of systems) {
    try {
      const decoder = await open(system);
      await decoder.prefill(prompt);
      const got = (await decoder.step(firstToken, false)).outputs.get('logits');
      const err = compare(Float32Array.from(got?.data ?? []), system === 'tfc-paged-sw' ? swWant : decodeWant);
      slots.push({ system, decoder, err, wallMs: [], gpuMs: [], dispatches: 0, stepMin: [] });
    } catch (e) {
      slots.push(failed(system, e));
    }
    progress.step(`decode ${system}: prefill`);
  }

  // The measured steps, interleaved: step i of every live system before step i + 1 of any.
  const live = slots.filter((s): s is LiveDecode => 'decoder' in s);
  const broken = new Map<string, SystemResult>();
  for (let i = 0; i < steps; i++) {
    for (let j = 0; j < live.length; j++) {
      const s = live[(i + j) % live.length];
      if (s === undefined || broken.has(s.system)) continue;
      try {
        const t0 = performance.now();
        const r = await s.decoder.step((firstToken + i + 1) % (set['vocab'] ?? 2), timestamps);
        s.wallMs.push(performance.now() - t0);
        s.dispatches = s.decoder.session.stats.lastDispatches;
        // Steps the run dispatched (a decode run skips the prefill path's: their `when` is false).
        const plan = s.decoder.plan;
        const timing: readonly StepTiming[] = (r.timing ?? []).filter((t) => {
          const w = plan.steps[t.step]?.when;
          return w === undefined || evalCondition(w, r.dims);
        });
        s.gpuMs.push(timing.reduce((a, t) => a + t.ns, 0) / 1e6);
        for (const st of timing) {
          const m = s.stepMin[st.step];
          if (m === undefined || st.ns / 1e6 < m.ms) s.stepMin[st.step] = { kernel: st.kernel, ms: st.ns / 1e6 };
        }
      } catch (e) {
        broken.set(s.system, failed(s.system, e));
      }
    }
  }
  const cacheNote = (system: string): string =>
    system === 'tfc-paged-sw'
      ? `window ${window}: pages before it freed, a step reads about ${Math.ceil((window + PAGE - 1) / PAGE)} pages of ${PAGE}`
      : system === 'tfc-paged'
        ? `pages of ${PAGE} in a pool of ${pages}, written in place`
        : system === 'tfc-int8'
          ? `int8 cache + f32 scales per (token, head) (concat), checked against the f32 oracle within ${INT8_TOL} of max |logit|`
          : 'contiguous cache (concat)';
  const results: SystemResult[] = slots.map((s) => {
    if (!('decoder' in s)) return s;
    s.decoder.dispose();
    s.decoder.session.dispose();
    progress.step(`decode ${s.system}: ${steps} steps`);
    const failure = broken.get(s.system);
    if (failure !== undefined) return failure;
    return {
      system: s.system,
      status: s.err.relErr <= (s.system === 'tfc-int8' ? INT8_TOL : 1e-3) ? 'ok' : 'wrong',
      timeSource: timestamps ? 'timestamp-query' : 'wall',
      wallMs: s.wallMs,
      ...(timestamps ? { gpuMs: s.gpuMs } : {}),
      maxAbsErr: s.err.maxAbsErr,
      relErr: s.err.relErr,
      kernels: s.dispatches,
      ...(s.stepMin.length > 0 ? { profile: profileOf(s.stepMin) } : {}),
      note: `${(1000 / median(s.wallMs)).toFixed(1)} tokens/s wall, ${s.dispatches} dispatches per token (${cacheNote(s.system)}; cache grows from ${P} to ${P + steps}; steps interleaved with the other systems)`,
    };
  });
  progress.end();
  // Bytes a step must move at the cache length of the middle measured step: weights and the cache read, logits and the new cache written (the contiguous model's).
  const kv = file('gpt2-kv.tfx');
  const lb = lowerBound(benchCompilation(readFileSync(kv, 'utf8'), kv, configOverrides(set), false).graph, new Map([['B', 1], ['T', 1], ['P', P + 1 + (steps >> 1)]]));
  return [{ suite: 'decode', name, params: { ...given, steps }, results, work: { bytes: lb.bytesRead + lb.bytesWritten } }];
}

/**
 * Time per kernel of one decode step: each plan step's fastest time over the measured steps (the
 * noise on this machine is one-sided: a step is never faster than its cost), summed by kernel.
 */
function profileOf(stepMin: readonly ({ kernel: string; ms: number } | undefined)[]): { kernel: string; ms: number; count: number }[] {
  const by = new Map<string, { ms: number; count: number }>();
  for (const st of stepMin) {
    if (st === undefined) continue;
    const e = by.get(st.kernel) ?? { ms: 0, count: 0 };
    e.ms += st.ms;
    e.count++;
    by.set(st.kernel, e);
  }
  return [...by].map(([kernel, e]) => ({ kernel, ...e })).sort((a, b) => b.ms - a.ms);
}
