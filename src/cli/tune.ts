// `tfc tune FILE`: for each matmul / fused-attention shape of the compiled model, times a handful
// of candidate schedules on the present WebGPU adapter. Each shape is tuned on its own sub-graph
// (tune-subgraph.ts: one representative per distinct node of that shape, operands as seeded random
// inputs), so a candidate costs one compile and runs of its own 1-3 kernels, and its check is a
// float64 run of those nodes alone. Timing: warm-up run excluded, median of repeats, GPU timestamps
// of the shape's kernels only, each step weighted by how many model nodes it stands for. A candidate
// whose outputs differ from the interpreter's is rejected and never cached; winners go to the tune
// cache (src/kernel/schedule/tune-cache.ts).
// The candidates and groups are tune-candidates.ts; the command, its cache handling and progress
// lines are tune-command.ts.
import type { Graph } from '../graph/ir.js';
import { type Diagnostic } from '../diag/diagnostic.js';
import { neededTensors } from '../io/check-tensors.js';
import { UsageError } from './args.js';
import { randomInputs, randomWeights } from './random.js';
import type { Tensor64 } from '../base/tensor.js';
import { interpret } from '../interp/interpret.js';
import { lowerGraph } from '../compile/kernels.js';
import { type TuneSubgraph, tuneSubgraph } from './tune-subgraph.js';
import { type Plan, evalCondition } from '../kernel/plan/plan.js';
import { type AttentionSchedule } from '../kernel/attention/schedule.js';
import { type MatmulSchedule, type Schedule, chooseSchedule } from '../kernel/schedule/schedule.js';
import { type TuneEntry, type TunedKind } from '../kernel/schedule/tune-cache.js';
import { type AcquiredDevice } from '../runtime/device.js';
import { type Session, createSession } from '../runtime/session.js';
import { targetLimitsOf } from '../runtime/target.js';
import { gatherIndexRanges } from './webgpu.js';
import {
  type CandidateResult,
  type TuneGroup,
  groupLabel,
  groupSteps,
  median,
  outputError,
  pickWinner,
  selectGroups,
  tuneGroups,
  withCandidate,
} from './tune-candidates.js';

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

