// TempPlacer: a run with the same temps as the last one keeps every temp in its slot (so the
// session's bind groups are reused), even where a fresh assignTemps over the kept slots would
// shuffle them (the tie between the two greedy orders at zero new bytes).
import { describe, expect, it } from 'vitest';
import { assignTemps, compact, TempPlacer, type TempRequest } from '../../../src/runtime/memory.js';

// Found by a search over random small instances: largest-first wins the first run, and over the
// slots it leaves first-use order (the tie's winner) puts temps 0 and 2 the other way round.
const reqs: TempRequest[] = [
  { id: 0, bytes: 64, firstUse: 3, lastUse: 4 },
  { id: 1, bytes: 256, firstUse: 5, lastUse: 7 },
  { id: 2, bytes: 64, firstUse: 3, lastUse: 4 },
  { id: 3, bytes: 256, firstUse: 3, lastUse: 3 },
  { id: 4, bytes: 64, firstUse: 0, lastUse: 2 },
  { id: 5, bytes: 64, firstUse: 4, lastUse: 4 },
];

const overlapFree = (a: ReturnType<typeof assignTemps>): boolean =>
  reqs.every((x) => reqs.every((y) => x === y || a.slotOf.get(x.id) !== a.slotOf.get(y.id) || x.lastUse < y.firstUse || y.lastUse < x.firstUse));

describe('TempPlacer', () => {
  it('without the memory, the second run over the kept slots moves temps (the case it exists for)', () => {
    const first = compact(assignTemps(reqs));
    const second = assignTemps(reqs, first.slotBytes);
    expect(second.slotBytes).toEqual(first.slotBytes); // nothing new allocated...
    expect([...second.slotOf].sort()).not.toEqual([...first.slotOf].sort()); // ...but temps swapped
  });

  it('keeps every temp in its slot on an identical run', () => {
    const placer = new TempPlacer();
    const first = compact(placer.place(reqs, []));
    const second = placer.place(reqs, first.slotBytes);
    expect([...second.slotOf].sort()).toEqual([...first.slotOf].sort());
    expect(second.slotBytes).toEqual(first.slotBytes);
    expect(overlapFree(second)).toBe(true);
  });

  it('places anew when the temps or the kept slots differ', () => {
    const placer = new TempPlacer();
    const first = compact(placer.place(reqs, []));
    const grown = reqs.map((r) => ({ ...r, bytes: r.bytes * 2 }));
    const second = placer.place(grown, first.slotBytes);
    expect(second.slotBytes.slice(0, first.slotBytes.length)).toEqual(first.slotBytes);
    expect(Math.max(...second.slotBytes)).toBe(512);
    const third = placer.place(reqs, [1024]);
    expect(third.slotBytes[0]).toBe(1024);
    expect([...third.slotOf.values()].every((s) => (third.slotBytes[s] ?? 0) >= 64)).toBe(true);
  });
});
