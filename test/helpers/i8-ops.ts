// The inputs of test/fixtures/i8-ops.tfx, shared by its WebGPU and CUDA-emulator tests.
import type { Tensor64 } from '../../src/base/tensor.js';

/** The fixture's inputs: x in [-4.25, 3] with quarters at every fifth element (x * 2 ties: round's halves), q over the whole i8 range. */
export function i8OpsInputs(): Map<string, Tensor64> {
  const N = 5;
  const x = Float64Array.from({ length: N * 7 }, (_, i) => (i % 5 === 0 ? (i - 17) / 4 : Math.sin(i * 1.7) * 3));
  const q = Float64Array.from({ length: N * 7 }, (_, i) => ((i * 73) % 256) - 128);
  return new Map<string, Tensor64>([
    ['x', { dtype: 'f32', shape: [N, 7], data: x.map((v) => Math.fround(v)) }],
    ['q', { dtype: 'i8', shape: [N, 7], data: q }],
    ['ids', { dtype: 'i32', shape: [3], data: Float64Array.of(4, 0, 2) }],
  ]);
}
