// Deterministic test data without dependencies, so that browser pages (test/e2e/browser) can share it.

/** Deterministic values in [-1, 1) (an LCG; f32-representable). */
export function seeded(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}
