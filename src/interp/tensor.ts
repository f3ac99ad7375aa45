// Transitional: float64 tensors live in src/base/tensor.ts. test/webgpu/matmul-lanes.test.ts, with
// edits in flight elsewhere, still imports this path; test/unit/layering.test.ts allows exactly it,
// and this file goes with its import change.
export * from '../base/tensor.js';
