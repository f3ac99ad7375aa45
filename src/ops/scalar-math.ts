// Scalar math that Math lacks, in float64: erf, the two GELU forms, floor modulo. The elementwise
// catalog entries (elementwise.ts) use them as their per-element functions.

const twoOverSqrtPi = 1.1283791670955126; // 2/sqrt(pi)
const oneOverSqrtPi = 0.5641895835477563; // 1/sqrt(pi)

/**
 * erf in float64, relative error around 1e-16: for |x| < 2.5 the all-positive series
 * erf(x) = 2/sqrt(pi) e^(-x^2) sum_n 2^n x^(2n+1) / (1*3*...*(2n+1)) (no cancellation), beyond it
 * 1 - erfc(x) with erfc's continued fraction e^(-x^2)/sqrt(pi) / (x + 1/2/(x + 1/(x + 3/2/(x + ...))))
 * evaluated by the modified Lentz method (Abramowitz & Stegun 7.1.6 and 7.1.14).
 */
export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x < 0) return -erf(-x);
  if (x < 2.5) {
    const x2 = x * x;
    let term = x;
    let sum = x;
    for (let n = 1; n < 200; n++) {
      term *= (2 * x2) / (2 * n + 1);
      sum += term;
      if (term < sum * 1e-17) break;
    }
    return twoOverSqrtPi * Math.exp(-x2) * sum;
  }
  if (x > 6) return 1; // erfc(6) ~ 2e-17 < half an ulp of 1
  return 1 - erfcContinuedFraction(x);
}

/** erfc(x) for x >= 2.5 by the continued fraction above (Lentz: f = b0, C = f, D = 0). */
function erfcContinuedFraction(x: number): number {
  const tiny = 1e-300;
  let f = x;
  let c = f;
  let d = 0;
  for (let n = 1; n < 500; n++) {
    const a = n / 2;
    d = x + a * d;
    if (d === 0) d = tiny;
    c = x + a / c;
    if (c === 0) c = tiny;
    d = 1 / d;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-17) break;
  }
  return (Math.exp(-x * x) * oneOverSqrtPi) / f;
}

const sqrt2OverPi = Math.sqrt(2 / Math.PI);

export function geluTanh(x: number): number {
  return 0.5 * x * (1 + Math.tanh(sqrt2OverPi * (x + 0.044715 * x * x * x)));
}

export function geluErf(x: number): number {
  return 0.5 * x * (1 + erf(x / Math.SQRT2));
}

/** Floor modulo (Python's `%`): the result has the divisor's sign. x mod 0 is NaN for floats. */
export function floorMod(a: number, b: number): number {
  const r = a % b;
  return r !== 0 && r < 0 !== b < 0 ? r + b : r;
}

/**
 * Round to the nearest integer, halves to even (0.5 -> 0, 1.5 -> 2, -2.5 -> -2): WGSL's `round`,
 * CUDA's `rintf` and torch.round all do this (Math.round rounds halves up).
 */
export function roundHalfEven(x: number): number {
  if (!Number.isFinite(x)) return x;
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}
