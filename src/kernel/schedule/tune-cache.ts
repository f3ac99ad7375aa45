// `tfc tune`'s cache of winning schedules (docs/performance.md, "tfc tune"): one JSON file, entries
// keyed by adapter + kernel kind + shape (scheduleShapeKey). Written with sorted keys so the same
// winners give the same bytes. `tfc run --target webgpu` (the adapter it runs on) and
// `tfc compile --tuned-for ADAPTER` read it into `Schedule.byShape`.
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Graph } from '../../graph/ir.js';
import { dimConstValue } from '../../base/dim.js';
import { type AttentionSchedule, attentionSharedBytes } from '../attention/schedule.js';
import { type MatmulSchedule, type Schedule, type TargetLimits, matmulSharedBytes, scheduleShapeKey } from './schedule.js';

export type TunedKind = 'matmul' | 'attention';

export interface TuneEntry {
  readonly adapter: string;
  readonly kind: TunedKind;
  readonly shape: string;
  readonly schedule: MatmulSchedule | AttentionSchedule;
  /** Median GPU time of the shape's kernels (all its steps in one run) with this schedule (informational). */
  readonly medianMs: number;
  readonly candidates: number;
}

export interface TuneCache {
  readonly version: 1;
  readonly entries: Readonly<Record<string, TuneEntry>>;
}

export const emptyTuneCache: TuneCache = { version: 1, entries: {} };

export function tuneKey(adapter: string, kind: TunedKind, shape: string): string {
  return `${adapter}|${kind}|${shape}`;
}

/** --cache FILE, else TFC_TUNE_CACHE, else ~/.cache/tfc/tune.json. */
export function tuneCachePath(explicit: string | undefined, env: Readonly<Record<string, string | undefined>>): string {
  if (explicit !== undefined && explicit !== '') return explicit;
  const e = env['TFC_TUNE_CACHE'];
  if (e !== undefined && e !== '') return e;
  return join(homedir(), '.cache', 'tfc', 'tune.json');
}

export type TuneCacheRead = { readonly ok: true; readonly cache: TuneCache } | { readonly ok: false; readonly reason: string };

const isRecord = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const isCount = (v: unknown): boolean => typeof v === 'number' && Number.isInteger(v) && v > 0;

/** Why `e` is not a cache entry stored under `key`, or undefined when it is one. */
function entryProblem(key: string, e: unknown): string | undefined {
  if (!isRecord(e)) return `entry '${key}' is not an object`;
  if (typeof e['adapter'] !== 'string' || (e['kind'] !== 'matmul' && e['kind'] !== 'attention') || typeof e['shape'] !== 'string') return `entry '${key}' lacks adapter, kind (matmul|attention) or shape`;
  if (key !== tuneKey(e['adapter'], e['kind'], e['shape'])) return `entry '${key}' is stored under the wrong key (expected '${tuneKey(e['adapter'], e['kind'], e['shape'])}')`;
  const s = e['schedule'];
  if (!isRecord(s)) return `entry '${key}' has no schedule object`;
  const needed = e['kind'] === 'matmul' ? ['tileRows', 'tileCols', 'tileK', 'threadRows', 'threadCols'] : ['tileRows', 'tileCols', 'lanes'];
  const bad = needed.find((f) => !isCount(s[f]));
  return bad === undefined ? undefined : `entry '${key}': schedule.${bad} is not a positive integer`;
}

/**
 * The cache at `path`, validated once here (it is user-editable JSON). A missing file is an empty
 * cache (tuning is optional); a file that is not a version-1 cache is reported, never guessed at.
 */
export function readTuneCache(path: string): TuneCacheRead {
  if (!existsSync(path)) return { ok: true, cache: emptyTuneCache };
  let j: unknown;
  try {
    j = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    return { ok: false, reason: e instanceof SyntaxError ? `not valid JSON (${e.message})` : `cannot read it (${e instanceof Error ? e.message : String(e)})` };
  }
  if (!isRecord(j) || j['version'] !== 1 || !isRecord(j['entries'])) return { ok: false, reason: 'not a tfc tune cache (expected {"version": 1, "entries": {...}})' };
  for (const [k, e] of Object.entries(j['entries'])) {
    const problem = entryProblem(k, e);
    if (problem !== undefined) return { ok: false, reason: problem };
  }
  return { ok: true, cache: { version: 1, entries: j['entries'] as Record<string, TuneEntry> } };
}

/** Adapters with entries, sorted. */
export function cachedAdapters(c: TuneCache): string[] {
  return [...new Set(Object.values(c.entries).map((e) => e.adapter))].sort();
}

/**
 * The adapter `name` means in `c` (`tfc compile --tuned-for`): an exact adapter name
 * (`webgpu:llvmpipe (...)`), the same without `webgpu:`, or a case-insensitive part of exactly one.
 */
export function resolveAdapter(c: TuneCache, name: string): { readonly adapter: string } | { readonly matches: readonly string[] } {
  const all = cachedAdapters(c);
  const exact = all.find((a) => a === name || a === `webgpu:${name}`);
  if (exact !== undefined) return { adapter: exact };
  const low = name.toLowerCase();
  const matches = name === '' ? [] : all.filter((a) => a.toLowerCase().includes(low));
  const only = matches[0];
  return matches.length === 1 && only !== undefined ? { adapter: only } : { matches };
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) out[k] = sortKeys((v as Record<string, unknown>)[k]);
    return out;
  }
  return v;
}

/** Deterministic text: keys sorted at every level, two-space indent, trailing newline. */
export function serializeTuneCache(c: TuneCache): string {
  return `${JSON.stringify(sortKeys(c), null, 2)}\n`;
}

export function withEntries(c: TuneCache, entries: readonly TuneEntry[]): TuneCache {
  const all: Record<string, TuneEntry> = { ...c.entries };
  for (const e of entries) all[tuneKey(e.adapter, e.kind, e.shape)] = e;
  return { version: 1, entries: all };
}

export function matmulFits(m: MatmulSchedule, t: TargetLimits): boolean {
  // The subgroup kernels: one subgroup per workgroup (their per-node checks are the lowering's).
  if (m.laneBroadcast === true) return t.subgroupSize > 0 && m.threadRows === m.tileRows && m.tileRows % t.subgroupSize === 0 && m.tileCols === t.subgroupSize * m.threadCols;
  if (m.kLanes === true) return t.subgroupSize > 0 && m.threadRows === m.tileRows && m.threadCols === m.tileCols;
  return (
    m.tileRows % m.threadRows === 0 &&
    m.tileCols % m.threadCols === 0 &&
    (m.isDirect === true || matmulSharedBytes(m) <= t.maxWorkgroupStorageBytes) &&
    (m.tileRows / m.threadRows) * (m.tileCols / m.threadCols) <= t.maxInvocationsPerWorkgroup
  );
}

export function attentionFits(s: AttentionSchedule, t: TargetLimits, dk: number, dv: number): boolean {
  const rpt = s.rowsPerThread ?? 1;
  if (s.tileRows % rpt !== 0 || s.tileCols % s.lanes !== 0) return false;
  if (s.useSubgroups && (t.subgroupSize === 0 || s.lanes !== t.subgroupSize)) return false;
  if (s.qInRegisters === true && !(s.shuffleP === true && s.useSubgroups)) return false;
  if (s.longPrefill !== undefined && !attentionFits(s.longPrefill.schedule, t, dk, dv)) return false;
  return (s.tileRows / rpt) * s.lanes <= t.maxInvocationsPerWorkgroup && attentionSharedBytes(s, s.tileRows, dk, dv) <= t.maxWorkgroupStorageBytes;
}

/** Constant head widths (dk, dv) of a fused_attention node, from k and v (operand 0 may be a qload's source, not q). */
export function headWidths(g: Graph, k: number, v: number): [number, number] | undefined {
  const dim = (id: number): number | undefined => {
    const d = g.nodes[id]?.type.shape.at(-1);
    return d === undefined ? undefined : dimConstValue(d);
  };
  const dk = dim(k);
  const dv = dim(v);
  return dk === undefined || dv === undefined ? undefined : [dk, dv];
}

export interface CachedSchedule {
  readonly schedule: Schedule;
  /** One line per node shape that uses a cached schedule (for --debug 1). */
  readonly used: readonly string[];
  /** One line per cached shape of this model left out because it does not fit `limits`. */
  readonly unfit: readonly string[];
}

/**
 * `base` with the cache's winners for `adapter` on `g`'s matmul and fused-attention shapes, each
 * kept only if it fits `limits` (a schedule tuned on one adapter may not fit another's limits).
 */
export function applyTuneCache(g: Graph, base: Schedule, cache: TuneCache, adapter: string, limits: TargetLimits): CachedSchedule {
  const matmul: Record<string, MatmulSchedule> = {};
  const attention: Record<string, AttentionSchedule> = {};
  const used: string[] = [];
  const unfit: string[] = [];
  const seen = new Set<string>();
  for (const n of g.nodes) {
    const kind: TunedKind | undefined = n.op === 'matmul' || n.op === 'fused_matmul' ? 'matmul' : n.op === 'fused_attention' ? 'attention' : undefined;
    if (kind === undefined) continue;
    const shape = scheduleShapeKey(g, n);
    const key = tuneKey(adapter, kind, shape);
    if (seen.has(key)) continue;
    seen.add(key);
    const e = cache.entries[key];
    if (e === undefined) continue;
    const line = `${kind} ${shape}: ${JSON.stringify(e.schedule)}`;
    if (kind === 'matmul') {
      const m = e.schedule as MatmulSchedule;
      if (!matmulFits(m, limits)) {
        unfit.push(line);
        continue;
      }
      matmul[shape] = m;
    } else {
      const a = e.schedule as AttentionSchedule;
      const w = headWidths(g, n.operands[1] ?? -1, n.operands[2] ?? -1);
      if (w === undefined || !attentionFits(a, limits, w[0], w[1])) {
        unfit.push(line);
        continue;
      }
      attention[shape] = a;
    }
    used.push(line);
  }
  if (used.length === 0) return { schedule: base, used, unfit };
  return { schedule: { ...base, byShape: { matmul, attention } }, used, unfit };
}
