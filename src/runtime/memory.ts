// Liveness-based reuse of GPU memory for a plan's temporaries: a temp lives from the step that
// first writes it to the step that last reads it; two temps share a buffer only when their live
// ranges do not overlap (a temp read at step s never shares with one written at step s).
// Pure bookkeeping, no WebGPU: the session maps slots to GPUBuffers and keeps them across runs.
import { evalSize, type Plan } from '../kernel/plan/plan.js';
import { paddedBytes } from './convert.js';

export interface TempRequest {
  readonly id: number;
  readonly bytes: number;
  readonly firstUse: number;
  readonly lastUse: number;
}

export interface TempAssignment {
  /** Temp id -> slot index. */
  readonly slotOf: ReadonlyMap<number, number>;
  /** Capacity in bytes per slot: the given slots first (unchanged), then new ones. */
  readonly slotBytes: readonly number[];
  /** Slots some temp uses in this assignment. */
  readonly usedSlots: ReadonlySet<number>;
}

/**
 * Temps placed in slots, the cheaper of two greedy orders (by the bytes of new slots; the first on
 * a tie). In order of first use, best fit: a temp takes the smallest free slot that holds it, else
 * a new slot of exactly its size; that fragments when sizes vary (a training step: [N, 4d]
 * activations beside [N, d] ones and small statistics). Largest first (TFLite's greedy-by-size):
 * each temp goes to the smallest slot, large enough, none of whose temps' live ranges overlap its
 * own; small temps then fill the gaps of large slots. `existing` are capacities of buffers kept from
 * an earlier run (with other dim values), reused before anything new is allocated.
 */
export function assignTemps(reqs: readonly TempRequest[], existing: readonly number[] = []): TempAssignment {
  const a = firstUseBestFit(reqs, existing);
  const b = largestFirst(reqs, existing);
  const added = (t: TempAssignment): number => t.slotBytes.slice(existing.length).reduce((x, y) => x + y, 0);
  return added(b) < added(a) ? b : a;
}

/**
 * `assignTemps` with a memory of the last placement: a run whose temps (ids, bytes, live ranges)
 * and kept slots are those the last run left gets the same slot of every temp, so its bind groups
 * are reused. Without it, a run after one that took the largest-first placement ties at zero new
 * bytes and picks first-use order: the same slots, other temps in them, every group rebuilt once.
 * Slots are numbered as the session keeps them: only the used ones, in order (`compact`).
 */
export class TempPlacer {
  private last: { readonly key: string; readonly capacities: readonly number[]; readonly assignment: TempAssignment } | undefined;

  place(reqs: readonly TempRequest[], existing: readonly number[]): TempAssignment {
    const key = reqs.map((r) => `${r.id}:${r.bytes}:${r.firstUse}:${r.lastUse}`).join(',');
    const last = this.last;
    if (last !== undefined && last.key === key && sameNumbers(last.capacities, existing)) return last.assignment;
    const assignment = assignTemps(reqs, existing);
    const kept = compact(assignment);
    this.last = { key, capacities: kept.slotBytes, assignment: kept };
    return assignment;
  }
}

/** The assignment over its used slots only, renumbered in order (what the session keeps). */
export function compact(a: TempAssignment): TempAssignment {
  const used = [...a.usedSlots].sort((x, y) => x - y);
  const renumber = new Map(used.map((s, i) => [s, i]));
  return {
    slotOf: new Map([...a.slotOf].map(([id, s]) => [id, renumber.get(s) ?? -1])),
    slotBytes: used.map((s) => a.slotBytes[s] ?? 0),
    usedSlots: new Set(used.keys()),
  };
}

const sameNumbers = (x: readonly number[], y: readonly number[]): boolean => x.length === y.length && x.every((v, i) => v === y[i]);

const overlaps = (x: TempRequest, y: TempRequest): boolean => x.firstUse <= y.lastUse && y.firstUse <= x.lastUse;

function largestFirst(reqs: readonly TempRequest[], existing: readonly number[]): TempAssignment {
  const slotBytes = [...existing];
  const held: TempRequest[][] = slotBytes.map(() => []);
  const slotOf = new Map<number, number>();
  const usedSlots = new Set<number>();
  const order = [...reqs].sort((a, b) => b.bytes - a.bytes || a.firstUse - b.firstUse || a.id - b.id);
  for (const r of order) {
    let best: number | undefined;
    for (let s = 0; s < slotBytes.length; s++) {
      const cap = slotBytes[s] ?? 0;
      if (cap < r.bytes || (held[s] ?? []).some((t) => overlaps(t, r))) continue;
      if (best === undefined || cap < (slotBytes[best] ?? 0)) best = s;
    }
    if (best === undefined) {
      best = slotBytes.length;
      slotBytes.push(r.bytes);
      held.push([]);
    }
    held[best]?.push(r);
    slotOf.set(r.id, best);
    usedSlots.add(best);
  }
  return { slotOf, slotBytes, usedSlots };
}

/** In order of first use; a temp whose last use is before another's first use returns its slot. */
function firstUseBestFit(reqs: readonly TempRequest[], existing: readonly number[]): TempAssignment {
  const slotBytes = [...existing];
  const free = new Set<number>(slotBytes.keys());
  const slotOf = new Map<number, number>();
  const usedSlots = new Set<number>();
  const order = [...reqs].sort((a, b) => a.firstUse - b.firstUse || a.id - b.id);
  const live: TempRequest[] = [];
  for (const r of order) {
    for (let i = live.length - 1; i >= 0; i--) {
      const l = live[i];
      if (l !== undefined && l.lastUse < r.firstUse) {
        const s = slotOf.get(l.id);
        if (s !== undefined) free.add(s);
        live.splice(i, 1);
      }
    }
    let best: number | undefined;
    for (const s of free) {
      const cap = slotBytes[s] ?? 0;
      if (cap >= r.bytes && (best === undefined || cap < (slotBytes[best] ?? 0))) best = s;
    }
    if (best === undefined) {
      best = slotBytes.length;
      slotBytes.push(r.bytes);
    } else {
      free.delete(best);
    }
    slotOf.set(r.id, best);
    usedSlots.add(best);
    live.push(r);
  }
  return { slotOf, slotBytes, usedSlots };
}

/**
 * A plan's temporaries at these dims: the bytes of the slots `assignTemps` allocates (what a
 * session holds) and the most bytes live at one step (the lower bound any placement needs).
 */
export function planTempBytes(plan: Plan, dims: ReadonlyMap<string, number>): { readonly slots: number; readonly maxLive: number } {
  const reqs: TempRequest[] = plan.buffers
    .filter((b) => b.kind === 'temp')
    .map((b) => ({ id: b.id, bytes: paddedBytes(b.dtype, evalSize(b.elements, dims)), firstUse: b.firstUse, lastUse: b.lastUse }));
  const delta = new Array<number>(plan.steps.length + 1).fill(0);
  for (const r of reqs) {
    delta[r.firstUse] = (delta[r.firstUse] ?? 0) + r.bytes;
    delta[r.lastUse + 1] = (delta[r.lastUse + 1] ?? 0) - r.bytes;
  }
  let live = 0;
  let maxLive = 0;
  for (const d of delta) maxLive = Math.max(maxLive, (live += d));
  return { slots: assignTemps(reqs).slotBytes.reduce((a, b) => a + b, 0), maxLive };
}
