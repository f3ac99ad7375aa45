// Errors the float64 interpreter raises for bad data (missing tensors, wrong shapes, token ids
// out of range). They carry a diagnostic code so the CLI prints them like any other diagnostic.
import type { DiagCode } from '../diag/codes.js';
import type { Span } from '../diag/span.js';

export class InterpError extends Error {
  constructor(
    readonly code: DiagCode,
    message: string,
    readonly loc?: Span,
  ) {
    super(message);
    this.name = 'InterpError';
  }
}

export function isInterpError(e: unknown): e is InterpError {
  return e instanceof InterpError;
}
