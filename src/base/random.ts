// mulberry32: a 32-bit seeded generator with a tiny, portable state, so a seed gives the same
// numbers in Node, browsers and the Python references that reimplement it (sampling in
// generate, training windows, finite-difference tests).

/** A generator of uniform numbers in [0, 1) from `seed`. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
