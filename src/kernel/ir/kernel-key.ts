// A kernel's structural key, for sharing identical kernels in a plan (one pipeline for all of
// GPT-2's per-layer matmuls): everything a printed kernel depends on, serialized canonically.
// Kept in the kernel stage so deduplication needs no backend (it used to print WGSL or CUDA).
import type { Kernel } from './ir.js';

/**
 * The fields of `k` that reach its source, launch and bindings layout: body, buffers (slots,
 * roles, access, types), workgroup arrays, uniforms, workgroup size and grid. Left out: the
 * name (a shared kernel keeps its first use's), source locations, schedule and traffic (header
 * comments only), `op`, `bindings` and `when` (per launch, kept in each plan step).
 */
export function kernelKey(k: Kernel): string {
  return canonical({ body: k.body, buffers: k.buffers, shared: k.shared, uniforms: k.uniforms, workgroupSize: k.workgroupSize, grid: k.grid });
}

/**
 * JSON-like text with object keys sorted and numbers spelled exactly (-0, NaN and +-Infinity stay
 * distinct: JSON.stringify would print them as 0 and null), so equal keys mean equal structure.
 * Properties whose value is undefined are skipped, as an absent optional field.
 */
export function canonical(x: unknown): string {
  if (x === null) return 'null';
  switch (typeof x) {
    case 'number':
      return Object.is(x, -0) ? '-0' : String(x);
    case 'string':
      return JSON.stringify(x);
    case 'boolean':
      return String(x);
    case 'object': {
      if (Array.isArray(x)) return `[${x.map(canonical).join(',')}]`;
      const entries = Object.entries(x as Record<string, unknown>)
        .filter(([, v]) => v !== undefined)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      return `{${entries.map(([key, v]) => `${JSON.stringify(key)}:${canonical(v)}`).join(',')}}`;
    }
    default:
      throw new Error(`internal: kernelKey cannot serialize a ${typeof x}`);
  }
}

/**
 * Kernels grouped by key without printing keys: `kernelKey` is ~77 KB of text per attention
 * kernel and was 40% of compilePlan's time (test/unit/kernel/kernel-key.test.ts, docs/testing.md).
 * A structural hash picks a bucket and structural equality decides, the same relation as equal
 * `kernelKey` strings (object keys in any order, undefined properties absent, -0 != 0, NaN == NaN).
 */
export class KernelsByKey<V> {
  private readonly buckets = new Map<number, { kernel: Kernel; value: V }[]>();

  /** The value stored for a kernel with `k`'s key, else `make()`'s, stored for `k`. */
  findOrAdd(k: Kernel, make: () => V): V {
    const h = hashOf(keyed(k));
    let bucket = this.buckets.get(h);
    if (bucket === undefined) {
      bucket = [];
      this.buckets.set(h, bucket);
    }
    for (const e of bucket) if (sameStructure(keyed(e.kernel), keyed(k))) return e.value;
    const value = make();
    bucket.push({ kernel: k, value });
    return value;
  }
}

/** The fields `kernelKey` serializes, as an array so that both walks see them in one order. */
const keyed = (k: Kernel): unknown[] => [k.body, k.buffers, k.shared, k.uniforms, k.workgroupSize, k.grid];

const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);
const mix = (h: number): number => {
  const x = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d);
  return x ^ (x >>> 12);
};
function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h;
}

/**
 * A 32-bit hash with hashOf(a) === hashOf(b) whenever sameStructure(a, b). Objects are walked
 * with for-in: the IR is plain objects (nothing enumerable inherited), as canonical assumes.
 */
function hashOf(x: unknown): number {
  switch (typeof x) {
    case 'number':
      if ((x | 0) === x && !Object.is(x, -0)) return Math.imul(x, 0x9e3779b1);
      if (Number.isNaN(x)) return 0x7ff80001;
      f64[0] = x; // the bits: -0 and 0 differ, as in canonical
      return Math.imul(u32[0] ?? 0, 31) ^ (u32[1] ?? 0);
    case 'string':
      return hashString(x);
    case 'boolean':
      return x ? 0x1b873593 : 0x3c6ef372;
    case 'object': {
      if (x === null) return 0x2545f491;
      if (Array.isArray(x)) {
        let h = 0x27d4eb2d;
        for (const e of x) h = mix(h + hashOf(e));
        return h;
      }
      // A sum over the properties, so the order they were created in does not matter.
      let h = 0x165667b1;
      const o = x as Record<string, unknown>;
      for (const key in o) {
        const v = o[key];
        if (v !== undefined) h = (h + mix(hashString(key) ^ hashOf(v))) | 0;
      }
      return h;
    }
    default:
      throw new Error(`internal: kernelKey cannot serialize a ${typeof x}`);
  }
}

/** True when canonical(a) === canonical(b), without building either. */
export function sameStructure(a: unknown, b: unknown): boolean {
  if (typeof a !== 'object' || a === null || typeof b !== 'object' || b === null) return Object.is(a, b);
  if (a === b) return true;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameStructure(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const oa = a as Record<string, unknown>;
  const ob = b as Record<string, unknown>;
  let n = 0;
  for (const key in oa) {
    const v = oa[key];
    if (v === undefined) continue;
    n++;
    if (!sameStructure(v, ob[key])) return false;
  }
  for (const key in ob) if (ob[key] !== undefined) n--;
  return n === 0;
}
