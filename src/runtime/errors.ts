// Errors the WebGPU runtime raises. A bad input, weight or dim is the caller's mistake and carries
// the diagnostic code the CLI reports (TFC30x); a plan that exceeds the device's limits is
// refused before any dispatch; a lost device or a rejected shader ends the run instead of hanging.
import type { DiagCode } from '../diag/codes.js';

export type RuntimeErrorKind =
  | 'input' // inputs: missing, wrong dtype/shape/values, unbound dims
  | 'weight' // weights: missing, wrong dtype/shape
  | 'limit' // a buffer, binding, grid or workgroup over the device's limits
  | 'feature' // a kernel needs a feature (shader-f16, subgroups) the device lacks
  | 'plan' // a malformed plan or a kernel the shader compiler rejects (a tfc bug)
  | 'device'; // device lost, out of memory, validation error during a run

export class RuntimeError extends Error {
  constructor(
    readonly kind: RuntimeErrorKind,
    message: string,
    /** The diagnostic code for user mistakes (inputs and weights). */
    readonly code: DiagCode | undefined = undefined,
  ) {
    super(message);
    this.name = 'RuntimeError';
  }
}

export function mib(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(bytes % (1024 * 1024) === 0 ? 0 : 1)} MiB`;
}
