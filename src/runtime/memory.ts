// Liveness-based reuse of GPU memory for a plan's temporaries: a temp lives from the step that
// first writes it to the step that last reads it; two temps share a buffer only when their live
// ranges do not overlap (a temp read at step s never shares with one written at step s).
// Pure bookkeeping, no WebGPU: the session maps slots to GPUBuffers and keeps them across runs.

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
 * Greedy best-fit in order of first use: before placing a temp, every temp whose last use is
 * before its first use returns its slot to the free list; the temp takes the smallest free slot
 * that holds it, else a new slot of exactly its size. `existing` are capacities of buffers kept
 * from an earlier run (with other dim values), reused before anything new is allocated.
 */
export function assignTemps(reqs: readonly TempRequest[], existing: readonly number[] = []): TempAssignment {
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
