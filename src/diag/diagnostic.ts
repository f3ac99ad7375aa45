// Structured diagnostics: user mistakes are values, never thrown Errors (see STYLE.md).
import type { Span } from './span.js';
import type { DiagCode } from './codes.js';

export type Severity = 'error' | 'warning' | 'note';

export interface Note {
  readonly message: string;
  readonly loc?: Span;
}

export interface Diagnostic {
  readonly severity: Severity;
  readonly code: DiagCode;
  readonly message: string;
  readonly loc: Span;
  readonly notes: readonly Note[];
}

export function diag(code: DiagCode, loc: Span, message: string, notes: readonly Note[] = []): Diagnostic {
  return { severity: 'error', code, message, loc, notes };
}

export function warning(code: DiagCode, loc: Span, message: string, notes: readonly Note[] = []): Diagnostic {
  return { severity: 'warning', code, message, loc, notes };
}

/** Collects diagnostics for one run; stages push into it and keep going where they can. */
export class DiagnosticSink {
  readonly items: Diagnostic[] = [];
  constructor(readonly limit = 50) {}
  report(d: Diagnostic): void {
    if (this.items.length < this.limit) this.items.push(d);
  }
  get hasErrors(): boolean {
    return this.items.some((d) => d.severity === 'error');
  }
  get errorCount(): number {
    return this.items.filter((d) => d.severity === 'error').length;
  }
}

/**
 * Thrown only to unwind out of a stage once it has reported its diagnostics (e.g. from deep
 * inside graph building). The CLI catches it and prints the sink; it never carries a message
 * of its own, so a user never sees it as a stack trace.
 */
export class UserErrorsReported extends Error {
  constructor() {
    super('user errors reported');
  }
}

/** A bug in tfc, not in the user's model: the only error that may print a stack. */
export class InternalError extends Error {
  constructor(
    message: string,
    readonly pass?: string,
  ) {
    super(message);
  }
}

/** Levenshtein distance, for "did you mean" suggestions. */
export function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diagPrev = prev[0] ?? 0;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j] ?? 0;
      const left = prev[j - 1] ?? 0;
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      prev[j] = Math.min(up + 1, left + 1, diagPrev + cost);
      diagPrev = up;
    }
  }
  return prev[b.length] ?? 0;
}

/** The closest candidate within a distance that still looks like a typo, or undefined. */
export function closestName(name: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDist = Infinity;
  for (const c of candidates) {
    const d = editDistance(name.toLowerCase(), c.toLowerCase());
    if (d < bestDist || (d === bestDist && best !== undefined && c < best)) {
      best = c;
      bestDist = d;
    }
  }
  const allowed = Math.max(1, Math.floor(name.length / 3));
  return bestDist <= allowed ? best : undefined;
}
