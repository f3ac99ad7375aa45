// The one pass interface and the context every pass receives (options, target, sinks, stats).
// Passes read nothing else: no process.env, no module globals (STYLE.md "One pass interface").
import { DiagnosticSink } from '../diag/diagnostic.js';
import type { Span } from '../diag/span.js';
import type { Graph } from '../graph/ir.js';

export type Target = 'interp' | 'webgpu' | 'cuda';

export interface Pass<In = Graph, Out = In> {
  /** kebab-case; equals the file name and the --dump-after key. */
  readonly name: string;
  /** One line, listed under --dump-after in --help. */
  readonly summary: string;
  run(input: In, ctx: PassContext): Out;
}

export type GraphPass = Pass<Graph>;

/** A note about an optimization that did or did not happen ("attention at x:3:4 not fused: ..."). */
export interface Remark {
  readonly pass: string;
  readonly loc: Span;
  readonly message: string;
}

/** What the driver measured; mutable on purpose (it is output, like a sink). */
export interface PassStats {
  /** One entry per pass run, in order. */
  readonly timings: { readonly pass: string; readonly ms: number }[];
  /** `pass/rule` -> how many times the rule fired. */
  readonly ruleHits: Map<string, number>;
}

/** Adds `n` firings of `rule` (`pass/rule`) to the context's stats. */
export function countRuleHits(ctx: Pick<PassContext, 'stats'>, rule: string, n = 1): void {
  ctx.stats.ruleHits.set(rule, (ctx.stats.ruleHits.get(rule) ?? 0) + n);
}

export interface PassContext {
  readonly target: Target;
  /** Run verifyGraph after every pass (tests: always on). */
  readonly verify: boolean;
  /** Pass names whose output is dumped, or 'all'. */
  readonly dumpAfter: ReadonlySet<string> | 'all';
  /** Print loc(...) in dumps. */
  readonly dumpLocs: boolean;
  /** Receives each dump: the `// -----// IR Dump After <name> //----- //` header line and the IR. */
  readonly dump: (text: string) => void;
  readonly remark: (r: Remark) => void;
  readonly diagnostics: DiagnosticSink;
  readonly stats: PassStats;
  /**
   * Largest tensor one kernel binding may hold, in bytes (WebGPU maxStorageBufferBindingSize);
   * undefined: no limit (interp, cuda). split-large-weights splits weights above it.
   */
  readonly maxBindingBytes?: number;
}

/** WebGPU's default maxStorageBufferBindingSize (128 MiB): every adapter offers it; lavapipe offers no more. */
export const webgpuDefaultMaxBindingBytes = 134217728;

export interface PassContextOptions {
  readonly target?: Target;
  readonly verify?: boolean;
  readonly dumpAfter?: ReadonlySet<string> | readonly string[] | 'all';
  readonly dumpLocs?: boolean;
  readonly dump?: (text: string) => void;
  readonly remark?: (r: Remark) => void;
  readonly diagnostics?: DiagnosticSink;
  /** Default: webgpuDefaultMaxBindingBytes for target webgpu, no limit otherwise. */
  readonly maxBindingBytes?: number;
}

/**
 * A context with defaults: target interp, no dumps, remarks dropped, a fresh sink. `verify`
 * defaults to the TFC_VERIFY=1 environment switch (test/setup.ts sets it); this is the one place
 * that reads it, so passes stay free of the environment.
 */
export function createPassContext(opts: PassContextOptions = {}): PassContext {
  const maxBindingBytes = opts.maxBindingBytes ?? ((opts.target ?? 'interp') === 'webgpu' ? webgpuDefaultMaxBindingBytes : undefined);
  const dumpAfter = opts.dumpAfter === undefined ? new Set<string>() : opts.dumpAfter === 'all' ? 'all' : new Set(opts.dumpAfter);
  return {
    target: opts.target ?? 'interp',
    verify: opts.verify ?? process.env['TFC_VERIFY'] === '1',
    dumpAfter,
    dumpLocs: opts.dumpLocs ?? true,
    dump: opts.dump ?? (() => {}),
    remark: opts.remark ?? (() => {}),
    diagnostics: opts.diagnostics ?? new DiagnosticSink(),
    stats: { timings: [], ruleHits: new Map() },
    ...(maxBindingBytes === undefined ? {} : { maxBindingBytes }),
  };
}
