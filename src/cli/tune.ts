// `tfc tune FILE`: for each matmul / fused-attention shape of the compiled model, times a handful
// of candidate schedules on the present WebGPU adapter (warm-up run excluded, median of repeats,
// GPU timestamps summed over the model's steps), checks every candidate's outputs against the
// float64 interpreter (a wrong candidate is rejected and never cached), and caches the winners
// (src/kernel/tune-cache.ts). Only the tuned shape's schedule changes between candidates of a group.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Command } from 'commander';
import type { Graph } from '../graph/ir.js';
import type { Diagnostic } from '../diag/diagnostic.js';
import { UserErrorsReported } from '../diag/diagnostic.js';
import { neededTensors } from '../io/check-tensors.js';
import { UsageError, collect, parseSetOptions } from './args.js';
import { writeFileAtomic } from './fsio.js';
import { randomInputs, randomWeights } from './random.js';
import type { Reporter } from './report.js';
import { loadModel, runPasses } from './stages.js';
import type { Tensor64 } from '../ops/define.js';
import { interpret } from '../interp/interpret.js';
import { compilePlan } from '../kernel/compile-plan.js';
import { type AttentionSchedule, chooseAttentionSchedule } from '../kernel/lower-attention.js';
import { type MatmulSchedule, type Schedule, type TargetLimits, chooseSchedule, scheduleShapeKey } from '../kernel/schedule.js';
import { type TuneEntry, type TunedKind, applyTuneCache, attentionFits, headWidths, matmulFits, readTuneCache, serializeTuneCache, tuneCachePath, withEntries } from '../kernel/tune-cache.js';
import { type AcquiredDevice, acquireDevice, hasWebGpu } from '../runtime/device.js';
import { createSession } from '../runtime/session.js';
import { targetLimitsOf } from '../runtime/target.js';
import { gatherIndexRanges } from './webgpu.js';

const dedupe = <T>(xs: readonly T[]): T[] => {
  const seen = new Set<string>();
  return xs.filter((x) => {
    const k = JSON.stringify(x);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
};

/** The chosen matmul schedule first, then staged and direct tilings that fit `t` (at most 5). */
export function matmulCandidates(t: TargetLimits): MatmulSchedule[] {
  const all: MatmulSchedule[] = [
    chooseSchedule(t).matmul,
    { tileRows: 64, tileCols: 64, tileK: 16, threadRows: 4, threadCols: 4 },
    { tileRows: 32, tileCols: 32, tileK: 16, threadRows: 2, threadCols: 2 },
    { tileRows: 64, tileCols: 64, tileK: 16, threadRows: 8, threadCols: 8, isDirect: true },
    { tileRows: 32, tileCols: 32, tileK: 16, threadRows: 4, threadCols: 4, isDirect: true },
  ];
  return dedupe(all.filter((m) => matmulFits(m, t)));
}

/** The chosen attention schedule first, the GPU (staged) one, and CPU-style direct variants that fit. */
export function attentionCandidates(t: TargetLimits, dk: number, dv: number): AttentionSchedule[] {
  const chosen = chooseAttentionSchedule(t, dk, dv);
  const staged = chooseAttentionSchedule({ ...t, isCpu: false }, dk, dv);
  const lanes = staged.lanes;
  const direct = (tileRows: number, tileCols: number, rowsPerThread: number): AttentionSchedule => ({ ...staged, tileRows, tileCols, rowsPerThread, isDirect: true });
  const all: AttentionSchedule[] = [
    chosen,
    staged,
    direct(32, 8 * lanes, 8),
    direct(64, 4 * lanes, 8),
    ...(staged.useSubgroups ? [{ ...direct(32, 8 * lanes, 8), shuffleP: true }] : []),
  ];
  return dedupe(all.filter((s) => attentionFits(s, t, dk, dv)));
}

export interface TuneGroup {
  readonly kind: TunedKind;
  readonly shape: string;
  readonly nodes: number;
  readonly candidates: readonly (MatmulSchedule | AttentionSchedule)[];
}

/** Matmul and fused-attention nodes of `g` grouped by shape, with their candidates for `t`. */
export function tuneGroups(g: Graph, t: TargetLimits): TuneGroup[] {
  const groups = new Map<string, { kind: TunedKind; shape: string; nodes: number; candidates: (MatmulSchedule | AttentionSchedule)[] }>();
  for (const n of g.nodes) {
    const kind: TunedKind | undefined = n.op === 'matmul' || n.op === 'fused_matmul' ? 'matmul' : n.op === 'fused_attention' ? 'attention' : undefined;
    if (kind === undefined) continue;
    const shape = scheduleShapeKey(g, n);
    const key = `${kind}|${shape}`;
    const prev = groups.get(key);
    if (prev !== undefined) {
      prev.nodes++;
      continue;
    }
    let candidates: (MatmulSchedule | AttentionSchedule)[];
    if (kind === 'matmul') candidates = matmulCandidates(t);
    else {
      const w = headWidths(g, n.operands[0] ?? -1, n.operands[2] ?? -1);
      if (w === undefined) continue;
      candidates = attentionCandidates(t, w[0], w[1]);
    }
    groups.set(key, { kind, shape, nodes: 1, candidates });
  }
  return [...groups.values()];
}

/** `base` with one shape's schedule forced. */
export function withCandidate(base: Schedule, kind: TunedKind, shape: string, c: MatmulSchedule | AttentionSchedule): Schedule {
  return kind === 'matmul' ? { ...base, byShape: { matmul: { [shape]: c as MatmulSchedule } } } : { ...base, byShape: { attention: { [shape]: c as AttentionSchedule } } };
}

export interface CandidateResult {
  readonly schedule: MatmulSchedule | AttentionSchedule;
  /** Max |got - want| / (1 + |want|) over all outputs vs the float64 interpreter. */
  readonly error: number;
  readonly ok: boolean;
  /** Median GPU ms; NaN without timestamps or when rejected before timing. */
  readonly medianMs: number;
  readonly note?: string;
}

/** The fastest candidate whose outputs matched the interpreter; undefined if none did. */
export function pickWinner(results: readonly CandidateResult[]): CandidateResult | undefined {
  let best: CandidateResult | undefined;
  for (const r of results) {
    if (!r.ok || Number.isNaN(r.medianMs)) continue;
    if (best === undefined || r.medianMs < best.medianMs) best = r;
  }
  return best;
}

export const median = (xs: readonly number[]): number => (xs.length === 0 ? NaN : ([...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN));

/** Max relative error of `got` vs the interpreter's `want` (shape mismatch or a missing output: Infinity). */
export function outputError(want: ReadonlyMap<string, Tensor64>, got: ReadonlyMap<string, { readonly data: ArrayLike<number> }>): number {
  let err = 0;
  for (const [name, w] of want) {
    const gt = got.get(name);
    if (gt === undefined || gt.data.length !== w.data.length) return Infinity;
    for (let i = 0; i < w.data.length; i++) {
      const a = w.data[i] ?? 0;
      const b = gt.data[i] ?? NaN;
      const e = Math.abs(a - b) / (1 + Math.abs(a));
      if (!(e <= err)) err = Number.isNaN(e) ? Infinity : e;
    }
  }
  return err;
}

export interface TuneOptions {
  readonly repeats: number;
  /** Error bound vs the interpreter (default 1e-3 for f32 models, 3e-2 with f16). */
  readonly tolerance?: number;
  readonly progress?: (done: number, total: number, what: string) => void;
  /** Tests: replaces a candidate's outputs before the check (to see a wrong one rejected). */
  readonly corrupt?: (kind: TunedKind, index: number) => boolean;
}

export interface GroupResult extends TuneGroup {
  readonly results: readonly CandidateResult[];
  readonly winner?: CandidateResult;
}

export interface TuneReport {
  readonly adapter: string;
  readonly groups: readonly GroupResult[];
  readonly entries: readonly TuneEntry[];
}

/** Tunes `g` (after the webgpu passes) on `dev` with the given weights and inputs. */
export async function tune(
  dev: AcquiredDevice,
  g: Graph,
  weights: ReadonlyMap<string, Tensor64>,
  inputs: ReadonlyMap<string, Tensor64>,
  dims: ReadonlyMap<string, number>,
  opts: TuneOptions,
): Promise<TuneReport> {
  const target = targetLimitsOf(dev);
  const base = chooseSchedule(target);
  const want = interpret(g, { inputs, weights }, { dims }).outputs;
  const hasF16 = g.nodes.some((n) => n.type.dtype === 'f16' || n.type.dtype === 'bf16');
  const tol = opts.tolerance ?? (hasF16 ? 3e-2 : 1e-3);
  const groups = tuneGroups(g, target);
  const total = groups.reduce((a, gr) => a + gr.candidates.length, 0);
  let done = 0;
  const out: GroupResult[] = [];
  const entries: TuneEntry[] = [];
  for (const gr of groups) {
    const results: CandidateResult[] = [];
    for (const [i, c] of gr.candidates.entries()) {
      opts.progress?.(done, total, `${gr.kind} ${gr.shape}`);
      results.push(await runCandidate(dev, g, withCandidate(base, gr.kind, gr.shape, c), c, weights, inputs, dims, want, tol, opts, opts.corrupt?.(gr.kind, i) === true));
      done++;
    }
    const winner = pickWinner(results);
    out.push({ ...gr, results, ...(winner !== undefined ? { winner } : {}) });
    if (winner !== undefined) entries.push({ adapter: target.name, kind: gr.kind, shape: gr.shape, schedule: winner.schedule, medianMs: Number(winner.medianMs.toFixed(3)), candidates: gr.candidates.length });
  }
  opts.progress?.(done, total, 'done');
  return { adapter: target.name, groups: out, entries };
}

async function runCandidate(
  dev: AcquiredDevice,
  g: Graph,
  schedule: Schedule,
  c: MatmulSchedule | AttentionSchedule,
  weights: ReadonlyMap<string, Tensor64>,
  inputs: ReadonlyMap<string, Tensor64>,
  dims: ReadonlyMap<string, number>,
  want: ReadonlyMap<string, Tensor64>,
  tol: number,
  opts: TuneOptions,
  corrupt: boolean,
): Promise<CandidateResult> {
  let session;
  try {
    session = await createSession(dev, compilePlan(g, { target: targetLimitsOf(dev), schedule }), { inputRanges: gatherIndexRanges(g) });
  } catch (e) {
    return { schedule: c, error: Infinity, ok: false, medianMs: NaN, note: `failed: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}` };
  }
  try {
    session.loadWeights(weights);
    const first = await session.run(inputs, { dims }); // warm-up (pipeline compilation), not timed
    const got = corrupt ? new Map([...first.outputs].map(([k, v]) => [k, { data: Array.from(v.data, (x) => x + 1) }])) : first.outputs;
    const error = outputError(want, got);
    if (!(error <= tol)) return { schedule: c, error, ok: false, medianMs: NaN, note: 'wrong result' };
    const ms: number[] = [];
    for (let r = 0; r < opts.repeats; r++) {
      const res = await session.run(inputs, { dims, timing: true });
      if (res.timing !== undefined) ms.push(res.timing.reduce((a, t) => a + t.ns, 0) / 1e6);
    }
    return { schedule: c, error, ok: true, medianMs: median(ms), ...(ms.length === 0 ? { note: 'no timestamps' } : {}) };
  } finally {
    session.dispose();
  }
}

/** The table `tfc tune` prints: one row per candidate, the winner of each shape marked. */
export function tuneTable(r: TuneReport): string {
  const lines = [`tfc tune on ${r.adapter}`];
  for (const gr of r.groups) {
    lines.push(`${gr.kind} ${gr.shape} (${gr.nodes} node${gr.nodes === 1 ? '' : 's'})`);
    for (const c of gr.results) {
      const mark = c === gr.winner ? '*' : ' ';
      const t = Number.isNaN(c.medianMs) ? '       -' : c.medianMs.toFixed(3).padStart(8);
      const err = Number.isFinite(c.error) ? c.error.toExponential(1) : 'inf';
      lines.push(`  ${mark} ${t} ms  err ${err.padEnd(7)} ${c.ok ? 'ok      ' : 'REJECTED'} ${JSON.stringify(c.schedule)}${c.note !== undefined ? `  (${c.note})` : ''}`);
    }
    if (gr.winner === undefined) lines.push('    no candidate passed the check: nothing cached');
  }
  return `${lines.join('\n')}\n`;
}

// ---- the command -------------------------------------------------------------------------------

/** Cached winners for the present adapter (acquired only when the cache has entries). */
export async function cachedSchedule(
  g: Graph,
  limits: TargetLimits,
  cachePath: string,
  adapterOf: () => Promise<string | undefined>,
): Promise<{ readonly schedule: Schedule; readonly used: readonly string[]; readonly adapter?: string } | undefined> {
  const cache = readTuneCache(cachePath);
  if (Object.keys(cache.entries).length === 0) return undefined;
  const adapter = await adapterOf();
  if (adapter === undefined) return undefined;
  const r = applyTuneCache(g, chooseSchedule(limits), cache, adapter, limits);
  return r.used.length === 0 ? undefined : { ...r, adapter };
}

/** The present adapter's target name (`webgpu:<description>`), or undefined without WebGPU. */
export async function presentAdapter(): Promise<string | undefined> {
  try {
    const gpu = await hasWebGpu();
    if (!gpu.ok) return undefined;
    return targetLimitsOf(await acquireDevice()).name;
  } catch {
    return undefined;
  }
}

export interface TuneIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  readonly env: Readonly<Record<string, string | undefined>>;
}

export function addTuneCommand(program: Command, io: TuneIo, state: { debug: number; rep: Reporter }): void {
  program
    .command('tune')
    .description('time candidate matmul/attention schedules on this WebGPU adapter, check each against the float64 interpreter, cache the winners')
    .argument('<FILE>', '.tfx source (or a dumped .ir file)')
    .option('--set <k=v,...>', 'override config constants and bind dims (repeatable)', collect, [])
    .option('--repeats <N>', 'timed runs per candidate after one warm-up (median)', '5')
    .option('--cache <FILE>', 'cache file (default: $TFC_TUNE_CACHE, else ~/.cache/tfc/tune.json)')
    .option('--seed <N>', 'seed of the random weights and inputs', '0')
    .action(async (file: string, o: { set: string[]; repeats: string; cache?: string; seed: string }) => {
      const repeats = Number(o.repeats);
      if (!Number.isInteger(repeats) || repeats < 1 || repeats > 1000) throw new UsageError(`bad --repeats '${o.repeats}': expected an integer 1..1000`);
      const seed = Number(o.seed);
      if (!Number.isInteger(seed) || seed < 0) throw new UsageError(`bad --seed '${o.seed}'`);
      const overrides = parseSetOptions(o.set);
      const m = loadModel(state.rep, file, overrides);
      state.rep.flush();
      const g = runPasses(state.rep, m.graph, 'webgpu', { debug: state.debug, locs: true, log: io.err });
      state.rep.flush();
      const ds: Diagnostic[] = [];
      const needed = neededTensors(m.graph);
      const weights = randomWeights(needed, seed, overrides, ds);
      const inputs = randomInputs(m.graph, needed, seed, overrides, ds);
      state.rep.reportAll(ds);
      state.rep.flush();
      if (state.rep.hasErrors) throw new UserErrorsReported();
      const dims = new Map([...overrides].filter(([k]) => g.dims.includes(k)));
      const dev = await acquireDevice();
      const bar = (done: number, total: number, what: string): void => {
        const w = 24;
        const fill = total === 0 ? w : Math.round((w * done) / total);
        io.err(`\r[${'#'.repeat(fill)}${'.'.repeat(w - fill)}] ${done}/${total} ${what.slice(0, 60).padEnd(60)}${what === 'done' ? '\n' : ''}`);
      };
      const report = await tune(dev, g, weights, inputs, dims, { repeats, progress: bar });
      io.out(tuneTable(report));
      const path = tuneCachePath(o.cache, io.env);
      const cache = withEntries(readTuneCache(path), report.entries);
      mkdirSync(dirname(path), { recursive: true });
      writeFileAtomic(state.rep, path, serializeTuneCache(cache));
      io.err(`tfc tune: ${report.entries.length} winner${report.entries.length === 1 ? '' : 's'} for ${report.adapter} -> ${path}\n`);
    });
}
