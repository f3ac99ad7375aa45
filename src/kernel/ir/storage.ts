// How graph dtypes live in kernels: element types in global memory (bool as u32 0/1, bf16 as
// f32 converted at load by the runtime, i8 as bytes) and in arithmetic (i8 as i32). The runtime
// allocates storageBytes.
import type { DType } from '../../graph/types.js';
import type { ScalarType } from './ir.js';

// Defined with the dtypes (graph/types.ts) so split-large-weights, a graph pass, sizes bindings
// by the same rule without importing the kernel stage; kernel files keep importing it from here.
export { storageBytes } from '../../graph/types.js';

/** Element type of a graph dtype in global memory: bool as u32 0/1, bf16 as f32 (converted at load). */
export function storageType(t: DType): ScalarType {
  switch (t) {
    case 'f32':
    case 'bf16':
      return 'f32';
    case 'f16':
      return 'f16';
    case 'i32':
      return 'i32';
    case 'bool':
      return 'u32';
    case 'i8':
      return 'i8';
  }
}

/** Type of a graph dtype inside kernel arithmetic: bool as bool, i8 widened to i32. */
export function computeType(t: DType): ScalarType {
  return t === 'bool' ? 'bool' : t === 'i8' ? 'i32' : storageType(t);
}
