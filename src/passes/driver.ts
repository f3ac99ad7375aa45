// Runs a pipeline (pipeline.ts) over a graph: times each pass, dumps after the requested ones,
// verifies after each when ctx.verify, and turns a pass bug into an InternalError that names
// the pass and carries its printed input IR (the reproducer).
import { InternalError, UserErrorsReported } from '../diag/diagnostic.js';
import type { Graph } from '../graph/ir.js';
import { printGraph } from '../graph/print.js';
import { verifyGraph } from '../graph/verify.js';
import type { GraphPass, PassContext } from './pass.js';

export function dumpHeader(passName: string): string {
  return `// -----// IR Dump After ${passName} //----- //`;
}

export function runPipeline(g: Graph, passes: readonly GraphPass[], ctx: PassContext): Graph {
  let cur = g;
  for (const pass of passes) {
    const input = cur;
    const t0 = performance.now();
    let out: Graph;
    try {
      out = pass.run(input, ctx);
    } catch (e) {
      if (e instanceof UserErrorsReported) throw e;
      const why = e instanceof Error ? e.message : String(e);
      throw failure(pass.name, `internal compiler error in pass ${pass.name}: ${why}`, input, e);
    } finally {
      ctx.stats.timings.push({ pass: pass.name, ms: performance.now() - t0 });
    }
    if (ctx.verify) {
      const problems = verifyGraph(out);
      if (problems.length > 0) {
        const list = problems.map((p) => `  ${p}`).join('\n');
        throw failure(pass.name, `internal compiler error in pass ${pass.name}: the IR it produced fails verification:\n${list}`, input);
      }
    }
    if (ctx.dumpAfter === 'all' || ctx.dumpAfter.has(pass.name)) {
      ctx.dump(`${dumpHeader(pass.name)}\n${printGraph(out, { locs: ctx.dumpLocs })}`);
    }
    cur = out;
  }
  return cur;
}

function failure(pass: string, message: string, input: Graph, cause?: unknown): InternalError {
  const err = new InternalError(`${message}\n// -----// IR input of ${pass} //----- //\n${printGraph(input)}`, pass);
  if (cause !== undefined) (err as { cause?: unknown }).cause = cause;
  return err;
}
