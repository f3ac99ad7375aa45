// The front end under fuzzing: source text -> checkSource -> (if it checks) the webgpu pass
// pipeline with the verifier on -> compilePlan (kernels + WGSL). Asserts the robustness contract
// of issue 9: no exception escapes (an InternalError is a bug too), every diagnostic carries a
// location inside the file, errors and a graph never come together.
import { checkSource } from '../../src/check/check-source.js';
import { type Diagnostic, UserErrorsReported } from '../../src/diag/diagnostic.js';
import { printGraph } from '../../src/graph/print.js';
import { compilePlan } from '../../src/compile/plan.js';
import { runPipeline } from '../../src/passes/driver.js';
import { createPassContext } from '../../src/passes/pass.js';
import { pipelines } from '../../src/passes/pipeline.js';

export type Outcome = 'rejected' | 'checked' | 'compiled' | 'refused-later';

export const fuzzFile = 'fuzz.tfx';

/** Throws (a plain Error with a readable message) when a diagnostic has no usable location. */
export function assertLocated(d: Diagnostic, file: string, text: string): void {
  const lines = text.split('\n').length;
  const { loc } = d;
  const ok =
    loc.file === file &&
    Number.isInteger(loc.line) &&
    Number.isInteger(loc.col) &&
    loc.line >= 1 &&
    loc.col >= 1 &&
    loc.line <= lines + 1 &&
    loc.endLine >= loc.line &&
    (loc.endLine > loc.line || loc.endCol >= loc.col - 1);
  if (!ok) throw new Error(`diagnostic without a usable location: ${d.code} ${d.message} at ${JSON.stringify(loc)}`);
  if (d.message.trim() === '') throw new Error(`diagnostic ${d.code} has an empty message`);
}

/** Compiled graphs by printed IR (no locs): mutations that keep the meaning are compiled once. */
const compiled = new Map<string, Outcome>();

export interface FrontEndOptions {
  readonly overrides?: ReadonlyMap<string, number>;
  /** Run passes + compilePlan on graphs that check (default true). */
  readonly compile?: boolean;
}

/** Runs the whole front end on one source; throws only when the robustness contract is broken. */
export function throughFrontEnd(text: string, opts: FrontEndOptions = {}): Outcome {
  const r = checkSource(text, fuzzFile, opts.overrides ?? new Map());
  for (const d of r.diagnostics) assertLocated(d, fuzzFile, text);
  const errors = r.diagnostics.filter((d) => d.severity === 'error');
  if (r.graph === undefined) {
    if (errors.length === 0) throw new Error('checkSource gave neither a graph nor an error');
    return 'rejected';
  }
  if (errors.length > 0) throw new Error(`checkSource gave a graph and errors: ${errors.map((d) => d.code).join(', ')}`);
  if (opts.compile === false) return 'checked';
  const key = printGraph(r.graph, { locs: false });
  const seen = compiled.get(key);
  if (seen !== undefined) return seen;
  const ctx = createPassContext({ target: 'webgpu', verify: true });
  let outcome: Outcome;
  try {
    const g = runPipeline(r.graph, pipelines.webgpu, ctx);
    const plan = compilePlan(g);
    if (plan.kernels.some((k) => k.source.wgsl.length === 0)) throw new Error('a kernel with empty WGSL');
    outcome = 'compiled';
  } catch (e) {
    if (!(e instanceof UserErrorsReported)) throw e;
    if (!ctx.diagnostics.hasErrors) throw new Error('UserErrorsReported without a diagnostic');
    for (const d of ctx.diagnostics.items) assertLocated(d, fuzzFile, text);
    outcome = 'refused-later';
  }
  compiled.set(key, outcome);
  return outcome;
}

/** Tally of outcomes per property, printed at the end of a fuzz file. */
export class Tally {
  readonly counts = new Map<string, Map<Outcome, number>>();
  add(property: string, o: Outcome): void {
    const m = this.counts.get(property) ?? new Map<Outcome, number>();
    m.set(o, (m.get(o) ?? 0) + 1);
    this.counts.set(property, m);
  }
  total(): number {
    let n = 0;
    for (const m of this.counts.values()) for (const v of m.values()) n += v;
    return n;
  }
  report(): string {
    const rows = [...this.counts].map(([p, m]) => `  ${p.padEnd(34)} ${[...m].map(([o, n]) => `${o}=${n}`).join(' ')}`);
    return `front-end fuzz: ${this.total()} cases\n${rows.join('\n')}`;
  }
}
