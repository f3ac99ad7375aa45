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
