// Training data: a text tokenized once, split into train and validation parts, and batches of
// windows drawn by a seeded generator, so a run is reproducible and a reference (PyTorch) can be
// fed the same windows in the same order (`batchOffsets` is the whole contract).
import { mulberry32 } from '../base/random.js';

/** Token ids of the corpus, train part first, the last `valFraction` held out. */
export interface TokenCorpus {
  readonly train: Int32Array;
  readonly val: Int32Array;
}

export function splitCorpus(ids: ArrayLike<number>, valFraction: number): TokenCorpus {
  if (!(valFraction >= 0 && valFraction < 1)) throw new RangeError(`validation fraction ${valFraction} is not in [0, 1)`);
  const all = Int32Array.from(ids);
  const cut = all.length - Math.floor(all.length * valFraction);
  return { train: all.subarray(0, cut), val: all.subarray(cut) };
}

export { mulberry32 };

/**
 * Start offsets of the `batch` windows of every step: window i of step s reads tokens
 * [o, o + T] (T inputs and the next token of each as its target), o uniform in [0, n - T - 1].
 */
export function batchOffsets(seed: number, steps: number, batch: number, n: number, T: number): Int32Array[] {
  const span = n - T - 1;
  if (span < 1) throw new RangeError(`the data has ${n} tokens: too few for windows of ${T} + 1`);
  const next = mulberry32(seed);
  return Array.from({ length: steps }, () => Int32Array.from({ length: batch }, () => Math.floor(next() * span)));
}

/** The inputs and next-token targets ([batch, T] each, row-major) of windows at `offsets`. */
export function windows(ids: Int32Array, offsets: Int32Array, T: number): { tokens: Int32Array; targets: Int32Array } {
  const tokens = new Int32Array(offsets.length * T);
  const targets = new Int32Array(offsets.length * T);
  offsets.forEach((o, b) => {
    tokens.set(ids.subarray(o, o + T), b * T);
    targets.set(ids.subarray(o + 1, o + T + 1), b * T);
  });
  return { tokens, targets };
}

/** Consecutive non-overlapping windows covering `ids` (the validation set), at most `max` of them. */
export function evalOffsets(n: number, T: number, max: number): Int32Array {
  const count = Math.max(0, Math.min(max, Math.floor((n - 1) / T)));
  return Int32Array.from({ length: count }, (_, i) => i * T);
}

/** charlm's train.py schedule: linear warm-up, then linear decay to 10% of the peak. */
export function learningRate(step: number, steps: number, peak: number, warmup: number): number {
  return peak * Math.min(1, (step + 1) / Math.max(1, warmup)) * Math.max(0.1, 1 - step / steps);
}
