// The compiler's pass order, one flat array per target (STYLE.md "One pass interface, one flat
// pipeline per target"). The graph passes are shared; targets will differ only in the schedule
// passes that come after lowering.
import { eliminateCommonSubexpressions } from './eliminate-common-subexpressions.js';
import { eliminateDeadCode } from './eliminate-dead-code.js';
import { foldConstants } from './fold-constants.js';
import type { GraphPass, Target } from './pass.js';
import { simplifyMovement } from './simplify-movement.js';

/** Graph-level cleanups every target runs, in this order. */
export const graphPasses: readonly GraphPass[] = [foldConstants, simplifyMovement, eliminateCommonSubexpressions, eliminateDeadCode];

export const pipelines: Readonly<Record<Target, readonly GraphPass[]>> = {
  interp: [...graphPasses],
  webgpu: [...graphPasses],
  cuda: [...graphPasses],
};

/** Every pass name across all targets, in first-seen order (for --help and --dump-after checks). */
export const allPassNames: readonly string[] = [...new Set(Object.values(pipelines).flatMap((ps) => ps.map((p) => p.name)))];
