// `tfc tune FILE`: for each matmul / fused-attention shape of the compiled model, times a handful
// of candidate schedules on the present WebGPU adapter. Each shape is tuned on its own sub-graph
// (tune-subgraph.ts: one representative per distinct node of that shape, operands as seeded random
// inputs), so a candidate costs one compile and runs of its own 1-3 kernels, and its check is a
// float64 run of those nodes alone. Timing: warm-up run excluded, median of repeats, GPU timestamps
// of the shape's kernels only, each step weighted by how many model nodes it stands for. A candidate
// whose outputs differ from the interpreter's is rejected and never cached; winners go to the tune
// cache (src/kernel/schedule/tune-cache.ts).
import { accessSync, constants, existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Command } from 'commander';
import type { Graph } from '../graph/ir.js';
import { type Diagnostic, UserErrorsReported, diag } from '../diag/diagnostic.js';
import { neededTensors } from '../io/check-tensors.js';
import { fileSpan } from '../io/safetensors.js';
import { UsageError, collect, parseSetOptions } from './args.js';
import { writeFileAtomic } from './fsio.js';
import { randomInputs, randomWeights, unboundShapes } from './random.js';
import type { Reporter } from './report.js';
import { openModel } from './stages.js';
import type { Tensor64 } from '../base/tensor.js';
import { interpret } from '../interp/interpret.js';
import { type KernelProgram, assertNever } from '../kernel/ir/ir.js';
import { lowerGraph } from '../compile/kernels.js';
import { type TuneSubgraph, tuneSubgraph } from './tune-subgraph.js';
import { type Plan, evalCondition } from '../kernel/plan/plan.js';
import { type AttentionSchedule, chooseAttentionSchedule } from '../kernel/attention/schedule.js';
import { type MatmulSchedule, type Schedule, type TargetLimits, chooseSchedule, lavapipeLimits, scheduleShapeKey } from '../kernel/schedule/schedule.js';
import {
  type CachedSchedule,
  type TuneEntry,
  type TunedKind,
  applyTuneCache,
  attentionFits,
  cachedAdapters,
  headWidths,
  matmulFits,
  readTuneCache,
  resolveAdapter,
  serializeTuneCache,
  tuneCachePath,
  withEntries,
} from '../kernel/schedule/tune-cache.js';
import { type AcquiredDevice, NoWebGpuError, acquireDevice } from '../runtime/device.js';
import { RuntimeError } from '../runtime/errors.js';
import { type Session, createSession } from '../runtime/session.js';
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

/**
 * The chosen matmul schedule first. A CPU adapter with subgroups then gets lane-broadcast tiles of
 * L, 4L and 2L rows (8 columns per lane for the last) and the direct 8x8 kernel (the staged GPU
 * tilings are 2-3x slower there and cost a pipeline compile each); other targets get staged and
 * direct tilings. Only what fits `t`, at most 5.
 */
export function matmulCandidates(t: TargetLimits): MatmulSchedule[] {
  const L = t.subgroupSize;
  const direct8: MatmulSchedule = { tileRows: 64, tileCols: 64, tileK: 16, threadRows: 8, threadCols: 8, isDirect: true };
  if (t.isCpu === true && L > 0) {
    const lanes = (rows: number, cols: number): MatmulSchedule => ({ tileRows: rows * L, tileCols: cols * L, tileK: 4, threadRows: rows * L, threadCols: cols, laneBroadcast: true, rowsFirst: true });
    return dedupe([chooseSchedule(t).matmul, lanes(1, 4), lanes(4, 4), lanes(2, 8), direct8].filter((m) => matmulFits(m, t)));
  }
  const all: MatmulSchedule[] = [
    chooseSchedule(t).matmul,
    { tileRows: 64, tileCols: 64, tileK: 16, threadRows: 4, threadCols: 4 },
    { tileRows: 32, tileCols: 32, tileK: 16, threadRows: 2, threadCols: 2 },
    direct8,
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

/** The matmul or fused-attention nodes of one shape: one tuning group, one cache entry. */
export interface TuneGroup {
  readonly kind: TunedKind;
  readonly shape: string;
  /** Graph node ids of this kind and shape: the kernels lowered from them are the ones timed. */
  readonly nodeIds: readonly number[];
  readonly candidates: readonly (MatmulSchedule | AttentionSchedule)[];
  /** Why the group has no candidates (attention whose head widths are not constants). */
  readonly skipped?: string;
}

const tunedKindOf = (op: string): TunedKind | undefined => (op === 'matmul' || op === 'fused_matmul' ? 'matmul' : op === 'fused_attention' ? 'attention' : undefined);

/** Matmul and fused-attention nodes of `g` grouped by shape (graph order), with their candidates for `t`. */
export function tuneGroups(g: Graph, t: TargetLimits): TuneGroup[] {
  const groups = new Map<string, { kind: TunedKind; shape: string; nodeIds: number[]; widths?: [number, number] }>();
  for (const n of g.nodes) {
    const kind = tunedKindOf(n.op);
    if (kind === undefined) continue;
    const shape = scheduleShapeKey(g, n);
    const key = `${kind}|${shape}`;
    const prev = groups.get(key);
    if (prev !== undefined) prev.nodeIds.push(n.id);
    else {
      const w = kind === 'attention' ? headWidths(g, n.operands[1] ?? -1, n.operands[2] ?? -1) : undefined;
      groups.set(key, { kind, shape, nodeIds: [n.id], ...(w !== undefined ? { widths: w } : {}) });
    }
  }
  return [...groups.values()].map(({ widths, ...gr }) => {
    if (gr.kind === 'matmul') return { ...gr, candidates: withNormFoldChoice(g, gr.nodeIds, matmulCandidates(t)) };
    if (widths === undefined) return { ...gr, candidates: [], skipped: 'head widths are not constants' };
    return { ...gr, candidates: attentionCandidates(t, widths[0], widths[1]) };
  });
}

/**
 * The norm fold is a fusion the tuner decides by measuring (issue 13: fusion is a choice of the
 * same search): where the group's nodes fold a layernorm/rmsnorm into the matmul, the default
 * schedule is also tried with the other `normFold` (the chooser takes 'separate' for the CPU lane
 * kernels, where the inline fold cost 7-57%, and 'inline' elsewhere). Both candidates' times
 * include the norm: a separate norm kernel is lowered from the same node, so it is timed too.
 */
export function withNormFoldChoice(g: Graph, nodeIds: readonly number[], candidates: MatmulSchedule[]): MatmulSchedule[] {
  const folds = nodeIds.map((id) => g.nodes[id]).filter((n) => n?.op === 'fused_matmul' && n.attrs['norm'] !== undefined);
  const d = candidates[0];
  if (folds.length === 0 || d === undefined || d.kSplit === true) return candidates;
  // 'separate' writes the normalized rows to a temp, so A must be a plain buffer (not a view).
  if (folds.some((n) => g.nodes[n?.operands[0] ?? -1]?.op === 'view')) return candidates;
  const chosen = d.normFold ?? (d.laneBroadcast === true || d.kLanes === true ? 'separate' : 'inline');
  return [...candidates, { ...d, normFold: chosen === 'separate' ? 'inline' : 'separate' }];
}

/** How `--only` and the tables name a group. */
export const groupLabel = (gr: Pick<TuneGroup, 'kind' | 'shape'>): string => `${gr.kind} ${gr.shape}`;

/**
 * The groups `--only` selects: a selector is a kind (`matmul`, `attention`), a shape key, or a
 * label as the table prints it (`matmul f32[16,32],f32[32,32]->f32[16,32]`). No selectors: all.
 */
export function selectGroups<G extends Pick<TuneGroup, 'kind' | 'shape'>>(groups: readonly G[], only: readonly string[]): { readonly groups: G[]; readonly unknown: string[] } {
  if (only.length === 0) return { groups: [...groups], unknown: [] };
  const hits = (gr: G, sel: string): boolean => sel === gr.kind || sel === gr.shape || sel === groupLabel(gr);
  return { groups: groups.filter((gr) => only.some((sel) => hits(gr, sel))), unknown: only.filter((sel) => !groups.some((gr) => hits(gr, sel))) };
}

/**
 * The steps (= kernels of `program`, in launch order; compilePlan keeps one step per kernel) that
 * were lowered from `nodeIds`: the only kernels a candidate schedule for that group changes.
 */
export function groupSteps(program: KernelProgram, nodeIds: readonly number[]): number[] {
  const origin = program.origin;
  if (origin === undefined || origin.length !== program.kernels.length) throw new Error('internal: lowered program has no kernel origins');
  const ids = new Set(nodeIds);
  const out: number[] = [];
  origin.forEach((id, step) => {
    if (ids.has(id)) out.push(step);
  });
  return out;
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
  /** Median over the timed runs of the group's kernels' summed GPU time (ms); NaN when not timed. */
  readonly medianMs: number;
  /** Kernel of each timed step (the group's steps that run at these dims), in launch order. */
  readonly timedKernels?: readonly string[];
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

/** What `tune` is doing, for a progress display (the CLI prints one line per candidate). */
export type TuneProgress =
  | { readonly kind: 'reference'; readonly group: TuneGroup; readonly distinct: number }
  | { readonly kind: 'reference-done'; readonly ms: number }
  | { readonly kind: 'candidate'; readonly done: number; readonly total: number; readonly group: TuneGroup; readonly index: number }
  | { readonly kind: 'candidate-done'; readonly done: number; readonly total: number; readonly result: CandidateResult }
  | { readonly kind: 'timing'; readonly group: TuneGroup; readonly candidates: number; readonly repeats: number }
  | { readonly kind: 'timing-done'; readonly ms: number };

export interface TuneOptions {
  readonly repeats: number;
  /** Seed of the random weights and inputs of each group's sub-graph (default 0). */
  readonly seed?: number;
  /** Error bound vs the interpreter (default 1e-3 for f32 models, 3e-2 with f16). */
  readonly tolerance?: number;
  /** Group selectors (see selectGroups); empty or absent: every group. */
  readonly only?: readonly string[];
  readonly progress?: (e: TuneProgress) => void;
  /** Tests: replaces a candidate's outputs before the check (to see a wrong one rejected). */
  readonly corrupt?: (kind: TunedKind, index: number) => boolean;
}

export interface GroupResult extends TuneGroup {
  readonly results: readonly CandidateResult[];
  readonly winner?: CandidateResult;
  /** Nodes timed for the group (one per distinct node; the rest are counted by multiplicity). */
  readonly distinct: number;
}

export interface TuneReport {
  readonly adapter: string;
  readonly repeats: number;
  readonly groups: readonly GroupResult[];
  readonly entries: readonly TuneEntry[];
}

/** Seeded weights and inputs of a group's sub-graph at `dims` (every dim its tensors use must be bound). */
function subgraphFeeds(sub: Graph, dims: ReadonlyMap<string, number>, seed: number): { weights: Map<string, Tensor64>; inputs: Map<string, Tensor64> } {
  const ds: Diagnostic[] = [];
  const needed = neededTensors(sub);
  const weights = randomWeights(needed, seed, dims, ds);
  const inputs = randomInputs(sub, needed, seed, dims, ds);
  if (ds.length > 0) throw new UsageError(`tfc tune: ${ds[0]?.message ?? 'unbound dims'}`);
  return { weights, inputs };
}

/**
 * Tunes the matmul and fused-attention shapes of `g` (a model's webgpu pipeline graph) on `dev`:
 * each group on its sub-graph (tuneSubgraph: the group's distinct nodes, operands as seeded random
 * inputs), each candidate compiled alone, checked against the float64 interpreter's run of that
 * sub-graph, and timed (the group's kernels, each step weighted by how many model nodes it stands for).
 */
export async function tune(dev: AcquiredDevice, g: Graph, dims: ReadonlyMap<string, number>, opts: TuneOptions): Promise<TuneReport> {
  const target = targetLimitsOf(dev);
  const base = chooseSchedule(target);
  const hasF16 = g.nodes.some((n) => n.type.dtype === 'f16' || n.type.dtype === 'bf16');
  const tol = opts.tolerance ?? (hasF16 ? 3e-2 : 1e-3);
  const groups = selectGroups(tuneGroups(g, target), opts.only ?? []).groups;
  const total = groups.reduce((a, gr) => a + gr.candidates.length, 0);
  let done = 0;
  const out: GroupResult[] = [];
  const entries: TuneEntry[] = [];
  for (const gr of groups) {
    const sub = tuneSubgraph(g, gr.nodeIds);
    const results: CandidateResult[] = [];
    if (gr.candidates.length > 0) {
      const feeds = subgraphFeeds(sub.graph, dims, opts.seed ?? 0);
      opts.progress?.({ kind: 'reference', group: gr, distinct: sub.multiplicity.size });
      const started = performance.now();
      const want = interpret(sub.graph, feeds, { dims }).outputs;
      opts.progress?.({ kind: 'reference-done', ms: performance.now() - started });
      const live: LiveCandidate[] = [];
      try {
        for (const [i, c] of gr.candidates.entries()) {
          opts.progress?.({ kind: 'candidate', done, total, group: gr, index: i });
          const r = await prepareCandidate(dev, sub, withCandidate(base, gr.kind, gr.shape, c), c, feeds, dims, want, tol, opts.corrupt?.(gr.kind, i) === true);
          results.push(r.result);
          if (r.live !== undefined) live.push({ ...r.live, index: i });
          done++;
          opts.progress?.({ kind: 'candidate-done', done, total, result: r.result });
        }
        opts.progress?.({ kind: 'timing', group: gr, candidates: live.length, repeats: opts.repeats });
        const started = performance.now();
        const ms = await timeInterleaved(live, feeds.inputs, dims, opts.repeats);
        opts.progress?.({ kind: 'timing-done', ms: performance.now() - started });
        for (const [j, l] of live.entries()) {
          const r = results[l.index];
          const times = ms[j] ?? [];
          if (r === undefined || l.timed.length === 0) continue;
          results[l.index] = { ...r, medianMs: times.length === 0 ? NaN : median(times), ...(times.length === 0 ? { note: 'no timestamps' } : {}) };
        }
      } finally {
        for (const l of live) l.session.dispose();
      }
    }
    const winner = pickWinner(results);
    out.push({ ...gr, results, distinct: sub.multiplicity.size, ...(winner !== undefined ? { winner } : {}) });
    if (winner !== undefined) entries.push({ adapter: target.name, kind: gr.kind, shape: gr.shape, schedule: winner.schedule, medianMs: Number(winner.medianMs.toFixed(4)), candidates: gr.candidates.length });
  }
  return { adapter: target.name, repeats: opts.repeats, groups: out, entries };
}

/** A checked candidate with its session open, waiting for the interleaved timing rounds. */
interface LiveCandidate {
  readonly index: number;
  readonly session: Session;
  /** Plan steps lowered from the representatives that run at these dims. */
  readonly timed: readonly number[];
  /** Per timed step: how many model nodes it stands for. */
  readonly weight: readonly number[];
}

/**
 * Compiles a candidate, runs it once (warm-up: pipeline compilation) and checks its outputs. A
 * candidate that passes stays open (`live`) for timing; the result's median is filled in later.
 */
async function prepareCandidate(
  dev: AcquiredDevice,
  sub: TuneSubgraph,
  schedule: Schedule,
  c: MatmulSchedule | AttentionSchedule,
  feeds: { readonly weights: ReadonlyMap<string, Tensor64>; readonly inputs: ReadonlyMap<string, Tensor64> },
  dims: ReadonlyMap<string, number>,
  want: ReadonlyMap<string, Tensor64>,
  tol: number,
  corrupt: boolean,
): Promise<{ result: CandidateResult; live?: Omit<LiveCandidate, 'index'> }> {
  const target = targetLimitsOf(dev);
  let session: Session;
  let plan: Plan;
  let steps: number[];
  let origin: readonly number[];
  try {
    // One lowering per candidate: its program gives the representatives' steps, its plan the pipelines.
    const k = lowerGraph(sub.graph, { limits: target, schedule });
    steps = groupSteps(k.program, [...sub.multiplicity.keys()]);
    origin = k.program.origin ?? [];
    plan = k.plan;
    session = await createSession(dev, plan, { inputRanges: gatherIndexRanges(sub.graph) });
  } catch (e) {
    return { result: { schedule: c, error: Infinity, ok: false, medianMs: NaN, note: `failed: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}` } };
  }
  let keep = false;
  try {
    session.loadWeights(feeds.weights);
    const first = await session.run(feeds.inputs, { dims }); // warm-up (pipeline compilation), not timed
    // Steps whose `when` is false at these dims (the other path of a symbolic-T attention) do not run.
    const timed = steps.filter((i) => {
      const when = plan.steps[i]?.when;
      return when === undefined || evalCondition(when, first.dims);
    });
    // Each step counts once per model node its representative stands for.
    const weight = timed.map((i) => sub.multiplicity.get(origin[i] ?? -1) ?? 1);
    const timedKernels = timed.flatMap((i, j) => Array<string>(weight[j] ?? 1).fill(plan.steps[i]?.kernel ?? '?'));
    const got = corrupt ? new Map([...first.outputs].map(([k, v]) => [k, { data: Array.from(v.data, (x) => x + 1) }])) : first.outputs;
    const error = outputError(want, got);
    if (!(error <= tol)) return { result: { schedule: c, error, ok: false, medianMs: NaN, timedKernels, note: 'wrong result' } };
    keep = true;
    const note = timed.length === 0 ? { note: 'none of its kernels runs at these dims' } : {};
    return { result: { schedule: c, error, ok: true, medianMs: NaN, timedKernels, ...note }, live: { session, timed, weight } };
  } finally {
    if (!keep) session.dispose();
  }
}

/**
 * Times the live candidates of a group in `repeats` rounds, one run of each per round, starting
 * each round one candidate later: a change in machine speed (shared cores, clock drift; ~30%
 * over minutes on the 2-core CI machine) hits every candidate alike instead of whichever ran
 * last, as `tfc bench` does. Returns per candidate the weighted GPU ms of its timed steps per run.
 */
export async function timeInterleaved(live: readonly Omit<LiveCandidate, 'index'>[], inputs: ReadonlyMap<string, Tensor64>, dims: ReadonlyMap<string, number>, repeats: number): Promise<number[][]> {
  const ms = live.map((): number[] => []);
  for (let round = 0; round < repeats; round++) {
    for (let k = 0; k < live.length; k++) {
      const j = (round + k) % live.length;
      const l = live[j];
      if (l === undefined || l.timed.length === 0) continue;
      const res = await l.session.run(inputs, { dims, timing: true });
      if (res.timing !== undefined) ms[j]?.push(l.timed.reduce((a, i, t) => a + (res.timing?.[i]?.ns ?? 0) * (l.weight[t] ?? 1), 0) / 1e6);
    }
  }
  return ms;
}

/** `a x3, b` for [a, a, a, b]: kernel names in first-launch order with their step counts, at most `max` names. */
export function kernelSummary(names: readonly string[], max = 4): string {
  const counts = new Map<string, number>();
  for (const n of names) counts.set(n, (counts.get(n) ?? 0) + 1);
  const shown = [...counts].slice(0, max).map(([n, k]) => (k === 1 ? n : `${n} x${k}`));
  const more = counts.size - max;
  return `${shown.join(', ')}${more > 0 ? `, +${more} more kernel${more === 1 ? '' : 's'}` : ''}`;
}

/** A schedule as one short line (`64x64 k16 8x8 direct`): the table's candidate column. */
export function scheduleText(c: MatmulSchedule | AttentionSchedule): string {
  if ('tileK' in c) {
    const fold = c.normFold === undefined ? '' : ` norm ${c.normFold}`;
    if (c.laneBroadcast === true || c.kLanes === true) return `${c.tileRows}x${c.tileCols} k${c.tileK} ${c.kLanes === true ? 'K across lanes' : `lane broadcast ${c.threadCols} cols/lane`}${c.rowsFirst === true ? ' rows-first' : ''}${fold}`;
    return `${c.tileRows}x${c.tileCols} k${c.tileK} ${c.threadRows}x${c.threadCols}/thread${c.isDirect === true ? ' direct' : ' staged'}${fold}`;
  }
  const extras = [c.isDirect === true ? 'direct' : 'staged', ...(c.rowsPerThread !== undefined ? [`${c.rowsPerThread} rows/thread`] : []), ...(c.useSubgroups ? ['subgroups'] : []), ...(c.shuffleP === true ? ['shuffleP'] : [])];
  return `${c.tileRows}x${c.tileCols} ${c.lanes} lanes ${extras.join(' ')}`;
}

/**
 * The table `tfc tune` prints: per shape, the steps timed (the kernels lowered from that shape's
 * nodes; every other kernel is left out of the time), then one row per candidate, the winner marked.
 */
export function tuneTable(r: TuneReport): string {
  const lines = [
    `tfc tune on ${r.adapter}: ms = median of ${r.repeats} run${r.repeats === 1 ? '' : 's'} of the GPU time of each shape's own kernels (summed over its steps);`,
    `ratio = ms / ms of the default schedule (the first row); err = max |gpu - float64| / (1 + |float64|)`,
  ];
  for (const gr of r.groups) {
    const timed = (gr.winner ?? gr.results.find((c) => c.timedKernels !== undefined))?.timedKernels;
    const nodes = `${gr.nodeIds.length} node${gr.nodeIds.length === 1 ? '' : 's'}${gr.distinct < gr.nodeIds.length ? ` (${gr.distinct} distinct, each timed once and counted per node)` : ''}`;
    lines.push(`${groupLabel(gr)}: ${nodes}; timed ${timed === undefined ? 'nothing (no candidate ran)' : `${timed.length} step${timed.length === 1 ? '' : 's'}: ${kernelSummary(timed)}`}`);
    if (gr.skipped !== undefined) lines.push(`    not tuned: ${gr.skipped}`);
    const defaultMs = gr.results[0]?.medianMs ?? NaN;
    for (const [i, c] of gr.results.entries()) {
      const mark = c === gr.winner ? '*' : ' ';
      const t = Number.isNaN(c.medianMs) ? '       -' : c.medianMs.toFixed(3).padStart(8);
      const ratio = Number.isNaN(c.medianMs) || !(defaultMs > 0) ? '     -' : `${(c.medianMs / defaultMs).toFixed(2)}x`.padStart(6);
      const err = Number.isFinite(c.error) ? c.error.toExponential(1) : 'inf';
      const own = c.timedKernels !== undefined && timed !== undefined && c.timedKernels.join() !== timed.join() ? [`timed ${kernelSummary(c.timedKernels)}`] : [];
      const notes = [...(i === 0 ? ['default'] : []), ...(c.note !== undefined ? [c.note] : []), ...own];
      const row = `  ${mark} ${t} ms ${ratio}  err ${err.padEnd(7)} ${c.ok ? 'ok      ' : 'REJECTED'} ${scheduleText(c.schedule).padEnd(40)}${notes.length > 0 ? `  (${notes.join('; ')})` : ''}`;
      lines.push(row.trimEnd());
    }
    if (gr.winner === undefined && gr.skipped === undefined) lines.push('    no candidate passed the check and was timed: nothing cached');
  }
  return `${lines.join('\n')}\n`;
}

// ---- the command -------------------------------------------------------------------------------

/** A cache that is not valid is the user's file to fix: TFC311 naming it, exit 1. */
function reportBadCache(rep: Reporter, path: string, reason: string, hint: string): never {
  rep.report(diag('TFC311', fileSpan(path), `the tune cache is ${reason}; ${hint}`));
  throw new UserErrorsReported();
}

/**
 * `tfc run --target webgpu`: the cached winners for the adapter it runs on (`adapter`). A cache
 * that does not read is ignored with a warning (tuning is optional; the run stays correct).
 */
export function cachedScheduleForRun(g: Graph, limits: TargetLimits, cachePath: string, warn: (text: string) => void): CachedSchedule | undefined {
  const read = readTuneCache(cachePath);
  if (!read.ok) {
    warn(`tfc: warning: ignoring the tune cache '${cachePath}': it is ${read.reason}\n`);
    return undefined;
  }
  if (Object.keys(read.cache.entries).length === 0) return undefined;
  const r = applyTuneCache(g, chooseSchedule(limits), read.cache, limits.name, limits);
  return r.used.length === 0 ? undefined : r;
}

/**
 * `tfc compile --tuned-for ADAPTER`: the cached winners of a named adapter, read from the file
 * alone (no device is started, so an offline compile stays offline). Usage errors when the name
 * matches no adapter in the cache or several; a warning when none of its entries fits this model.
 */
export function cachedScheduleForCompile(
  rep: Reporter,
  g: Graph,
  limits: TargetLimits,
  cachePath: string,
  adapterName: string,
  warn: (text: string) => void,
): CachedSchedule & { readonly adapter: string } {
  const read = readTuneCache(cachePath);
  if (!read.ok) reportBadCache(rep, cachePath, read.reason, "fix or delete it, or point TFC_TUNE_CACHE at another file");
  const adapters = cachedAdapters(read.cache);
  if (adapters.length === 0) throw new UsageError(`--tuned-for '${adapterName}': the tune cache '${cachePath}' has no entries (run 'tfc tune' on that machine, or set TFC_TUNE_CACHE)`);
  const found = resolveAdapter(read.cache, adapterName);
  if (!('adapter' in found)) {
    const what = found.matches.length > 1 ? `matches several adapters (${found.matches.join('; ')}): name one exactly` : `has no entries in the tune cache '${cachePath}'`;
    throw new UsageError(`--tuned-for '${adapterName}' ${what}; adapters with entries: ${adapters.join('; ')}`);
  }
  const base = chooseSchedule(limits);
  const r = applyTuneCache(g, base, read.cache, found.adapter, limits);
  for (const u of r.unfit) warn(`tfc compile: warning: tuned schedule for ${found.adapter} not used, it does not fit --limits ${limits.name}: ${u}\n`);
  if (r.used.length === 0 && r.unfit.length === 0) {
    const n = Object.values(read.cache.entries).filter((e) => e.adapter === found.adapter).length;
    warn(`tfc compile: warning: --tuned-for '${adapterName}': none of the ${n} cached shape${n === 1 ? '' : 's'} of ${found.adapter} is a matmul/attention shape of this model (run 'tfc tune' on it with the same --set); default schedules used\n`);
  }
  return { ...r, adapter: found.adapter };
}

export interface TuneIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  readonly env: Readonly<Record<string, string | undefined>>;
}

/** Fails now, before any tuning, when the cache cannot be written (exit 2, like any unwritable output). */
function checkWritable(path: string): void {
  try {
    if (existsSync(path) && statSync(path).isDirectory()) throw new Error('it is a folder');
    const dir = dirname(resolve(path));
    mkdirSync(dir, { recursive: true });
    accessSync(dir, constants.W_OK);
    if (existsSync(path)) accessSync(path, constants.W_OK);
  } catch (e) {
    throw new UsageError(`cannot write the tune cache '${path}': ${e instanceof Error ? e.message.split('\n')[0] : String(e)} (pass --cache FILE)`);
  }
}

/** One progress line per candidate on stderr: written when it starts, finished with its result. */
function progressPrinter(err: (text: string) => void): (e: TuneProgress) => void {
  return (e) => {
    switch (e.kind) {
      case 'reference':
        err(`${groupLabel(e.group)}: float64 reference of its ${e.distinct === 1 ? 'node' : `${e.distinct} distinct nodes`} (interpreter)... `);
        return;
      case 'reference-done':
        err(`${(e.ms / 1000).toFixed(1)} s\n`);
        return;
      case 'candidate': {
        const w = String(e.total).length;
        const c = e.group.candidates[e.index];
        err(`[${String(e.done + 1).padStart(w)}/${e.total}] ${groupLabel(e.group)} candidate ${e.index + 1}/${e.group.candidates.length} ${c === undefined ? '' : scheduleText(c)}: compile, check... `);
        return;
      }
      case 'candidate-done': {
        const r = e.result;
        err(`${r.ok ? `ok (err ${r.error.toExponential(1)})` : 'REJECTED'}${r.note !== undefined ? ` (${r.note})` : ''}\n`);
        return;
      }
      case 'timing':
        err(`${groupLabel(e.group)}: timing ${e.candidates} candidate${e.candidates === 1 ? '' : 's'}, ${e.repeats} interleaved round${e.repeats === 1 ? '' : 's'}... `);
        return;
      case 'timing-done':
        err(`${(e.ms / 1000).toFixed(1)} s\n`);
        return;
      default:
        assertNever(e);
    }
  };
}

export function addTuneCommand(program: Command, io: TuneIo, state: { debug: number; rep: Reporter }): void {
  program
    .command('tune')
    .description('time candidate matmul/attention schedules on this WebGPU adapter (each shape\'s own kernels), check each against the float64 interpreter, cache the winners')
    .argument('<FILE>', '.tfx source (or a dumped .ir file)')
    .option('--set <k=v,...>', 'override config constants and bind dims (repeatable)', collect, [])
    .option('--repeats <N>', 'timed runs per candidate after one checked warm-up, interleaved over the candidates of a shape (median)', '5')
    .option('--cache <FILE>', 'cache file (default: $TFC_TUNE_CACHE, else ~/.cache/tfc/tune.json)')
    .option('--seed <N>', 'seed of the random weights and inputs', '0')
    .option('--only <GROUP>', "tune only these shapes (repeatable): 'matmul', 'attention', or a shape as the table prints it", collect, [])
    .action(async (file: string, o: { set: string[]; repeats: string; cache?: string; seed: string; only: string[] }) => {
      const repeats = Number(o.repeats);
      if (!Number.isInteger(repeats) || repeats < 1 || repeats > 1000) throw new UsageError(`bad --repeats '${o.repeats}': expected an integer 1..1000`);
      const seed = Number(o.seed);
      if (!/^\d+$/.test(o.seed) || !Number.isSafeInteger(seed)) throw new UsageError(`bad --seed '${o.seed}': expected a non-negative integer`);
      // Everything that can fail without a device fails before one is started.
      const path = tuneCachePath(o.cache, io.env);
      checkWritable(path);
      const read = readTuneCache(path);
      if (!read.ok) reportBadCache(state.rep, path, read.reason, 'fix or delete it, or pass --cache FILE (tfc tune adds its winners to the entries already there)');
      const overrides = parseSetOptions(o.set);
      const m = openModel(state.rep, file, { overrides, target: 'webgpu', passes: { debug: state.debug, locs: true, log: io.err } });
      const checked = m.checked;
      state.rep.flush();
      const g = m.graph;
      state.rep.flush();
      const all = tuneGroups(g, lavapipeLimits); // the groups do not depend on the limits (their candidates do)
      if (all.length === 0) throw new UsageError(`nothing to tune: ${file} has no matmul or attention after the webgpu passes`);
      const picked = selectGroups(all, o.only);
      if (picked.unknown.length > 0) {
        throw new UsageError(`--only ${picked.unknown.map((u) => `'${u}'`).join(', ')} matches no shape of ${file}; its shapes: ${all.map(groupLabel).join('; ')} (or 'matmul', 'attention')`);
      }
      // Every tensor of the model needs its size now (the sub-graphs' operands derive from them).
      const ds: Diagnostic[] = [];
      unboundShapes(neededTensors(checked), overrides, ds);
      state.rep.reportAll(ds);
      state.rep.flush();
      if (state.rep.hasErrors) throw new UserErrorsReported();
      const dims = new Map([...overrides].filter(([k]) => g.dims.includes(k)));
      let dev: AcquiredDevice;
      try {
        dev = await acquireDevice();
      } catch (e) {
        if (e instanceof NoWebGpuError) throw new RuntimeError('device', `tfc tune needs a WebGPU adapter: ${e.message}`);
        throw e;
      }
      if (!dev.features.has('timestamp-query')) throw new RuntimeError('feature', `tfc tune: the adapter ${targetLimitsOf(dev).name} has no timestamp-query feature, so candidates cannot be timed`);
      const groups = selectGroups(tuneGroups(g, targetLimitsOf(dev)), o.only).groups;
      const total = groups.reduce((a, gr) => a + gr.candidates.length, 0);
      const nodes = groups.reduce((a, gr) => a + gr.nodeIds.length, 0);
      io.err(`tfc tune: ${file}: ${groups.length} shape${groups.length === 1 ? '' : 's'} (${nodes} nodes), ${total} candidates on ${targetLimitsOf(dev).name}; each shape on a sub-graph of its distinct nodes, each candidate: compile, 1 warm-up run checked vs float64, then ${repeats} timed run${repeats === 1 ? '' : 's'} each, interleaved with the shape's other candidates\n`);
      const started = performance.now();
      const report = await tune(dev, g, dims, { repeats, seed, only: o.only, progress: progressPrinter(io.err) });
      io.out(tuneTable(report));
      // Re-read: another tune may have written the file meanwhile; its entries for other shapes stay.
      const now = readTuneCache(path);
      const cache = withEntries(now.ok ? now.cache : read.cache, report.entries);
      writeFileAtomic(state.rep, path, serializeTuneCache(cache));
      io.err(`tfc tune: ${((performance.now() - started) / 1000).toFixed(0)} s; ${report.entries.length} winner${report.entries.length === 1 ? '' : 's'} for ${report.adapter} -> ${path} (use: tfc run --target webgpu on this adapter, or tfc compile --tuned-for '${report.adapter}')\n`);
    });
}
