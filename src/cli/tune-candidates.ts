// What `tfc tune` tries (tune.ts runs it): the candidate schedules per matmul and attention shape,
// the model's groups of nodes that share a shape, the schedule with one candidate forced, and
// how a winner is picked from the timed, checked candidates.
import type { Graph } from '../graph/ir.js';
import type { Tensor64 } from '../base/tensor.js';
import { type KernelProgram } from '../kernel/ir/ir.js';
import { type AttentionSchedule, chooseAttentionSchedule } from '../kernel/attention/schedule.js';
import { type MatmulSchedule, type Schedule, type TargetLimits, chooseSchedule, scheduleShapeKey } from '../kernel/schedule/schedule.js';
import { type TunedKind, attentionFits, headWidths, matmulFits } from '../kernel/schedule/tune-cache.js';

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
 * kernel, where the inline fold cost 7-57%, the decode templates' decodeNormFold for the decode
 * GEMVs, and 'inline' elsewhere). Both candidates' times
 * include the norm: a separate norm kernel is lowered from the same node, so it is timed too.
 */
export function withNormFoldChoice(g: Graph, nodeIds: readonly number[], candidates: MatmulSchedule[]): MatmulSchedule[] {
  const folds = nodeIds.map((id) => g.nodes[id]).filter((n) => n?.op === 'fused_matmul' && n.attrs['norm'] !== undefined);
  const d = candidates[0];
  if (folds.length === 0 || d === undefined) return candidates;
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
