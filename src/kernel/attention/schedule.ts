// Fused attention tile sizes (part of attention/attention.ts's lowering): the AttentionSchedule record,
// the workgroup bytes a tiling needs, the default choice per target (and the CPU's long-prefill
// schedule), and how many query rows and heads one prefill workgroup takes (Mode).
import type { TargetLimits } from '../schedule/schedule.js';
import type { Graph, Node } from '../../graph/ir.js';
import { hasVectorRuns } from '../lower/view.js';
import type { AttentionShape } from './node.js';

export interface AttentionSchedule {
  /** Br: query rows per workgroup of the prefill kernel. */
  readonly tileRows: number;
  /** Bc: keys per K/V tile streamed through workgroup memory (a multiple of `lanes`). */
  readonly tileCols: number;
  /** Threads per query row; equals the subgroup size when `useSubgroups`. */
  readonly lanes: number;
  /** Row max/sum over the lanes with subgroup ops (else a workgroup-memory fold). */
  readonly useSubgroups: boolean;
  /** Cache partitions of the split-K decode kernel (each writes acc, max and sum to a temp). */
  readonly splits: number;
  /** The decode path runs when T <= this (and the prefill kernel when T > this). */
  readonly decodeMaxT: number;
  /**
   * Where the attention's K/V second results (fused_attention_k / _v: a KV cache's present,
   * src/passes/fuse-cache-write.ts) are written: true (the default), by the split-K decode
   * kernel, each partition the cache rows of its range (one query head per KV head), and by a
   * map kernel of the load lambda on the prefill path; false, by that map kernel on every path
   * (one dispatch more per result at decode).
   */
  readonly writesCache?: boolean;
  /** Query rows per thread of the prefill kernel (divides `tileRows`; default 1). */
  readonly rowsPerThread?: number;
  /** K and V read from global memory instead of staged tiles (CPU targets; default false). */
  readonly isDirect?: boolean;
  /**
   * With `useSubgroups`: a lane's probabilities stay in its registers and the P V product reads
   * them from the row's lanes by subgroup shuffle (no P tile in workgroup memory, no barriers
   * around it; none at all per key tile with `isDirect`). Default false.
   */
  readonly shuffleP?: boolean;
  /**
   * Each thread holds its rows of Q in a private array (each lane loads dk / L of a row once;
   * subgroup shuffles give every lane the whole row), so no Q tile takes workgroup memory and a
   * workgroup can cover up to 1024 / L * rowsPerThread query rows; with staged K/V (not
   * `isDirect`) each K/V element is then read once per workgroup. Block sparsity also applies
   * per row group (one subgroup): it skips the key tiles its own rows never see under a
   * subgroup-uniform branch, while every thread joins the staging barriers. Needs `shuffleP`
   * and subgroups. Default false.
   */
  readonly qInRegisters?: boolean;
  /**
   * Prefill with T > `aboveT` uses `schedule` instead (its own step, selected at run time by a
   * plan `when` where T is symbolic): long prompts get the traffic-minimal schedule while short
   * ones keep many small workgroups. Its own decode fields are unused.
   */
  readonly longPrefill?: { readonly aboveT: number; readonly schedule: AttentionSchedule };
  /**
   * Prefill (every T above decodeMaxT) on the subgroup-broadcast kernel (attention/lanes.ts,
   * CPU adapters) instead of the fields above, which then describe only the split-K decode kernel.
   */
  readonly lanesPrefill?: LanesPrefill;
}

/**
 * The subgroup-broadcast prefill (attention/lanes.ts): one subgroup of `lanes` lanes per
 * workgroup, `tileRows` tile rows (query rows x the heads of a GQA group that share K/V; a
 * multiple of lanes), key tiles of `tileCols` keys (a multiple of lanes). `kVector`/`vVector`: 4
 * for vec4 loads of K along d / of V along the lane's columns, 1 for scalar loads; unset, the
 * chooser decides per node (specializeLanesPrefill).
 */
export interface LanesPrefill {
  readonly tileRows: number;
  readonly tileCols: number;
  readonly lanes: number;
  readonly kVector?: 1 | 4;
  readonly vVector?: 1 | 4;
}

/** Workgroup bytes of a tile configuration: Q, K, V tiles, the score/probability tile, the fold. */
export function attentionSharedBytes(s: AttentionSchedule, rows: number, dk: number, dv: number): number {
  const fold = s.useSubgroups ? 0 : (rows / (s.rowsPerThread ?? 1)) * s.lanes;
  const kv = s.isDirect === true ? 0 : s.tileCols * (dk + dv);
  const pTile = s.shuffleP === true && s.useSubgroups ? 0 : rows * s.tileCols;
  const qTile = s.qInRegisters === true ? 0 : rows * dk;
  return 4 * (qTile + kv + pTile + fold);
}

/** Prompts longer than this take the CPU's traffic-minimal prefill schedule (see longPrefillSchedule). */
export const LONG_PREFILL_ABOVE_T = 256;

/**
 * The traffic-minimal CPU prefill: one workgroup of as many row groups as the target allows (up
 * to 1024 rows: 8 rows per thread, lanes = the subgroup size), Q in private arrays, K/V tiles of
 * the most keys that fit staged once per workgroup, P by shuffle, block sparsity per row group.
 * At T <= 1024 every Q, K, V element is read once and O written once (the lower bound).
 */
export function longPrefillSchedule(target: TargetLimits, base: AttentionSchedule, dk: number, dv: number): AttentionSchedule | undefined {
  const lanes = target.subgroupSize;
  const rowsPerThread = 8;
  const rows = Math.min(1024, Math.floor(target.maxInvocationsPerWorkgroup / lanes) * rowsPerThread);
  for (const keys of [64, 32, 16, 8]) {
    const s: AttentionSchedule = { ...base, tileRows: rows, tileCols: Math.ceil(keys / lanes) * lanes, lanes, useSubgroups: true, rowsPerThread, isDirect: false, shuffleP: true, qInRegisters: true };
    if (rows >= 64 && attentionSharedBytes(s, rows, dk, dv) <= target.maxWorkgroupStorageBytes) return s;
  }
  return undefined;
}

/**
 * Largest tiles that fit the target: lanes = the subgroup size where the target has subgroups
 * (so a row's lanes are one subgroup), else 8 with a workgroup-memory fold. Br x Bc from
 * 32x32 down, within workgroup storage and invocations.
 */
export function chooseAttentionSchedule(target: TargetLimits, dk: number, dv: number): AttentionSchedule {
  const useSubgroups = target.subgroupSize > 0;
  const lanes = useSubgroups ? target.subgroupSize : 8;
  if (target.isCpu === true) {
    // CPU (lavapipe): K/V read directly, 8 query rows per thread, 4 row groups (32 threads),
    // 64 keys per tile (docs/performance.md, Performance notes): per d, 8 q and 8 K loads feed 64
    // multiply-adds; per key, 8 p and 8 V loads feed 64. 1.9x the 32x32 staged tiles on lavapipe.
    // With subgroups P is exchanged by shuffle within a row's lanes (no P tile, no barriers).
    const s: AttentionSchedule = { tileRows: 32, tileCols: 8 * lanes, lanes, useSubgroups, splits: 32, decodeMaxT: 1, writesCache: true, rowsPerThread: 8, isDirect: true, ...(useSubgroups ? { shuffleP: true } : {}) };
    if (4 * lanes <= target.maxInvocationsPerWorkgroup && attentionSharedBytes(s, 32, dk, dv) <= target.maxWorkgroupStorageBytes) {
      // With subgroups every prefill takes the broadcast kernel (docs/performance.md, Performance
      // notes): the fields above then serve the split-K decode kernel only.
      if (useSubgroups) return { ...s, lanesPrefill: lanesPrefillFor(lanes, dv) };
      return s;
    }
  }
  const roundUp = (x: number): number => Math.ceil(x / lanes) * lanes;
  const candidates: readonly (readonly [number, number])[] = [
    [32, 32],
    [16, 32],
    [16, 16],
    [8, 16],
    [4, 8],
    [2, 8],
    [1, 8],
  ];
  for (const [br, bc] of candidates) {
    const s: AttentionSchedule = { tileRows: br, tileCols: roundUp(bc), lanes, useSubgroups, splits: 32, decodeMaxT: 1, writesCache: true };
    if (br * lanes <= target.maxInvocationsPerWorkgroup && attentionSharedBytes(s, br, dk, dv) <= target.maxWorkgroupStorageBytes) return s;
  }
  throw new Error(`internal: no attention tile fits ${target.name} for head widths ${dk}, ${dv}`);
}

export interface Mode {
  readonly kind: 'prefill' | 'split';
  readonly rows: number; // tile rows per workgroup: (query row, head) pairs, query rows * heads
  /**
   * Query heads per workgroup (Gt, a divisor of G = Hq / Hkv for GQA/MQA prefill, else 1): tile
   * row r is query row floor((q0 + r) / Gt) of head h0 + (q0 + r) % Gt, so the Gt heads that
   * share a KV head share its K/V tiles (read once per Gt heads instead of once per head).
   */
  readonly heads: number;
  /** Tile rows per thread (register blocking); split mode sets it, prefill takes the schedule's. */
  readonly rowsPerThread?: number;
}

/**
 * Prefill tiles of Br query rows for Gt heads of a KV head's group: the largest divisor Gt of
 * the (constant) group whose Br * Gt rows fit the target's invocations and workgroup memory.
 */
export function prefillMode(shape: AttentionShape, s: AttentionSchedule, target: TargetLimits): Mode {
  if (s.qInRegisters === true) {
    // Already as many rows as the workgroup holds: the G heads share them (Br / Gt query rows).
    let heads = 1;
    for (let gt = 2; gt <= shape.groupConst; gt++) if (shape.groupConst % gt === 0 && s.tileRows % (gt * (s.rowsPerThread ?? 1)) === 0) heads = gt;
    return { kind: 'prefill', rows: s.tileRows, heads };
  }
  const fits = (gt: number): boolean =>
    ((s.tileRows * gt) / (s.rowsPerThread ?? 1)) * s.lanes <= target.maxInvocationsPerWorkgroup &&
    attentionSharedBytes(s, s.tileRows * gt, shape.dk, shape.dv) <= target.maxWorkgroupStorageBytes;
  let heads = 1;
  for (let gt = 2; gt <= shape.groupConst; gt++) if (shape.groupConst % gt === 0 && fits(gt)) heads = gt;
  return { kind: 'prefill', rows: s.tileRows * heads, heads };
}

/**
 * Split-K decode (T = 1): one workgroup per (cache partition, Gt query heads of a KV head, batch),
 * Gt the largest divisor of the constant group that fits, so the partition's K/V are read once
 * per Gt heads. Direct schedules (CPU) give the one row group's threads all Gt heads as
 * register-blocked rows (each K/V element loaded serves Gt rows; at most the schedule's
 * rowsPerThread); staged ones give each head its own row group (tiles staged once).
 */
export function splitMode(shape: AttentionShape, s: AttentionSchedule, target: TargetLimits): Mode {
  const direct = s.isDirect === true;
  const fits = (gt: number): boolean => {
    const rq = direct ? gt : 1;
    return (
      (direct ? gt <= Math.max(1, s.rowsPerThread ?? 1) : true) &&
      (gt / rq) * s.lanes <= target.maxInvocationsPerWorkgroup &&
      attentionSharedBytes({ ...s, rowsPerThread: rq }, gt, shape.dk, shape.dv) <= target.maxWorkgroupStorageBytes
    );
  };
  let heads = 1;
  for (let gt = 2; gt <= shape.groupConst; gt++) if (shape.groupConst % gt === 0 && fits(gt)) heads = gt;
  return { kind: 'split', rows: heads, heads, rowsPerThread: direct ? heads : 1 };
}

/**
 * The broadcast prefill's tiles: 4L rows and 4L keys while a lane holds at most 8 output
 * columns (dv <= 8L), else 3L rows and 2L keys (its dv/L accumulators per row grow). Measured on
 * lavapipe at T = 1024, 12 heads (node bench/lavapipe/attn.mjs, medians of 9 in one process with the FMA
 * peak; docs/performance.md): dh 64 causal 32x32 75% of the peak vs 36% for 8x32, full 52% vs 32%;
 * dh 128 full 24x16 61% vs 41%, causal 48% vs 29%.
 */
export function lanesPrefillFor(lanes: number, dv: number): LanesPrefill {
  return Math.ceil(dv / lanes) <= 8 ? { tileRows: 4 * lanes, tileCols: 4 * lanes, lanes } : { tileRows: 3 * lanes, tileCols: 2 * lanes, lanes };
}

/**
 * The chooser's per-node step for the broadcast prefill: unset vector widths become 4 where the
 * operand's layout allows (K contiguous along d, no kload; V along its columns with whole vec4s
 * per lane, no vload), else 1. Set fields are kept: the kernel checks them.
 */
export function specializeLanesPrefill(g: Graph, n: Node, p: LanesPrefill, dk: number, dv: number): LanesPrefill {
  if (p.kVector !== undefined && p.vVector !== undefined) return p;
  const k = g.nodes[n.operands[1] ?? -1];
  const vv = g.nodes[n.operands[2] ?? -1];
  const hasKload = n.attrs['kload'] !== undefined;
  const hasVload = n.attrs['vload'] !== undefined;
  const jv = Math.ceil(dv / p.lanes);
  const kVector = p.kVector ?? (k !== undefined && !hasKload && dk % 4 === 0 && hasVectorRuns(g, k, 3, 4) ? 4 : 1);
  const vVector = p.vVector ?? (vv !== undefined && !hasVload && jv % 4 === 0 && dv % 4 === 0 && hasVectorRuns(g, vv, 3, 4) ? 4 : 1);
  return { ...p, kVector, vVector };
}

/**
 * The fused attention backward (attention/backward.ts, one kernel in two roles): the dK/dV role
 * has a workgroup per key tile of `tileCols` keys (per KV head and batch) and streams the query
 * tiles of `tileRows` rows of every query head of its group; the dQ role has a workgroup per
 * query tile and streams the key tiles. `lanes` threads share a row (dQ) or a key (dK/dV), each
 * owning every lanes-th column of the accumulators. tileRows and tileCols are multiples of lanes.
 */
export interface AttentionBackwardSchedule {
  readonly tileRows: number;
  readonly tileCols: number;
  readonly lanes: number;
}

/** Workgroup bytes of the backward: Q, dO, K, V tiles, the per-row LSE and D, P and dS tiles. */
export function attentionBackwardSharedBytes(s: AttentionBackwardSchedule, dk: number, dv: number): number {
  return 4 * (s.tileRows * (dk + dv + 2) + s.tileCols * (dk + dv) + 2 * s.tileRows * s.tileCols);
}

/** Threads of the backward kernel: the larger role's rows (or keys) times lanes. */
export function attentionBackwardThreads(s: AttentionBackwardSchedule): number {
  return Math.max(s.tileRows, s.tileCols) * s.lanes;
}

/** The largest square tiles (32 down to 8 with 8 lanes, then 4 with 4: dk = dv = 128 at 16 KiB) that fit the target's workgroup memory and invocations. */
export function chooseAttentionBackwardSchedule(target: TargetLimits, dk: number, dv: number, tableTiles = 0): AttentionBackwardSchedule {
  for (const [t, lanes] of [[32, 8], [16, 8], [8, 8], [4, 4]] as const) {
    const s: AttentionBackwardSchedule = { tileRows: t, tileCols: t, lanes };
    // tableTiles: Br x Bc arrays of 4 bytes a learned score-mod table adds (attention/backward-table.ts).
    const bytes = attentionBackwardSharedBytes(s, dk, dv) + 4 * tableTiles * t * t;
    if (attentionBackwardThreads(s) <= target.maxInvocationsPerWorkgroup && bytes <= target.maxWorkgroupStorageBytes) return s;
  }
  throw new Error(`internal: no attention backward tile fits ${target.name} for head widths ${dk}, ${dv}`);
}
