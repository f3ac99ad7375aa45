// The CLI's view of the pipeline: load a model (.tfx source or a dumped .ir file), run a
// target's passes, interpret. Each stage reports user mistakes into the Reporter; a stage that
// failed throws UserErrorsReported so the command exits 1 after printing them.
import type { Module } from '../../grammar/ast.js';
import { formatModule } from '../../grammar/fmt.js';
import { parseTfx } from '../../grammar/parse.js';
import { printAst } from '../../grammar/print-ast.js';
import { checkSource } from '../check/check-source.js';
import { DiagnosticSink, UserErrorsReported, diag } from '../diag/diagnostic.js';
import { fileStart } from '../check/config.js';
import type { Graph } from '../graph/ir.js';
import { parseGraph } from '../graph/parse.js';
import { printGraph } from '../graph/print.js';
import { runPipeline } from '../passes/driver.js';
import { createPassContext, type Target } from '../passes/pass.js';
import { pipelines, unfusedPipeline } from '../passes/pipeline.js';
import type { Reporter } from './report.js';
import { readText } from './fsio.js';

export { formatModule, parseTfx, printAst, printGraph, runPipeline };

export type { Target };

export interface LoadedModel {
  readonly file: string;
  readonly isIr: boolean;
  readonly module?: Module;
  readonly graph: Graph;
}

/** Reads and checks a model; `.ir` files are parsed as graph IR (`--set` then binds dims only). */
export function loadModel(rep: Reporter, file: string, overrides: ReadonlyMap<string, number>): LoadedModel {
  const text = readText(file, 'model file');
  rep.addSource(file, text);
  if (file.endsWith('.ir')) {
    const sink = new DiagnosticSink();
    const graph = parseGraph(text, file, sink);
    rep.reportAll(sink.items);
    if (graph === undefined || sink.hasErrors) throw new UserErrorsReported();
    for (const name of overrides.keys()) {
      if (!graph.dims.includes(name)) {
        rep.report(diag('TFC305', fileStart(file), `--set ${name}: an IR file has no config; its dims are ${graph.dims.length > 0 ? graph.dims.join(', ') : 'none'}`));
      }
    }
    if (rep.hasErrors) throw new UserErrorsReported();
    return { file, isIr: true, graph };
  }
  const r = checkSource(text, file, overrides);
  rep.reportAll(r.diagnostics);
  if (r.graph === undefined || rep.hasErrors) throw new UserErrorsReported();
  return r.module === undefined ? { file, isIr: false, graph: r.graph } : { file, isIr: false, module: r.module, graph: r.graph };
}

/** Parses a source file only (for `fmt` and `--emit ast`). */
export function parseOnly(rep: Reporter, file: string): Module {
  const text = readText(file, 'model file');
  rep.addSource(file, text);
  const sink = new DiagnosticSink();
  const module = parseTfx(text, file, sink);
  rep.reportAll(sink.items);
  if (sink.hasErrors) throw new UserErrorsReported();
  return module;
}

/** Pass names of a target's pipeline, in order, with summaries (for --help and --dump-after). */
export function passList(target: Target = 'interp'): readonly { readonly name: string; readonly summary: string }[] {
  return pipelines[target].map((p) => ({ name: p.name, summary: p.summary }));
}

export interface PassRunOptions {
  readonly dumpAfter?: string; // a pass name or 'all'
  readonly debug: number;
  readonly locs: boolean;
  readonly log: (text: string) => void; // stderr
  /** Leave the fusion passes out (`--no-fuse`). */
  readonly noFuse?: boolean;
}

/**
 * Runs the target's pipeline. Debug level 2 prints the time of each pass and the rule hits,
 * level 3 dumps the IR after every pass (as --dump-after all); dumps go to `log` (stderr).
 */
export function runPasses(rep: Reporter, g: Graph, target: Target, opts: PassRunOptions): Graph {
  const dumpAfter = opts.debug >= 3 || opts.dumpAfter === 'all' ? 'all' : opts.dumpAfter !== undefined ? [opts.dumpAfter] : [];
  const ctx = createPassContext({
    target,
    dumpAfter,
    dumpLocs: opts.locs,
    dump: (text) => opts.log(text.endsWith('\n') ? text : text + '\n'),
    remark: (r) => {
      if (opts.debug >= 1) opts.log(`remark: ${r.loc.file}:${r.loc.line}:${r.loc.col}: [${r.pass}] ${r.message}\n`);
    },
  });
  const out = runPipeline(g, opts.noFuse === true ? unfusedPipeline(target) : pipelines[target], ctx);
  if (opts.debug >= 2) {
    for (const t of ctx.stats.timings) opts.log(`pass ${t.pass.padEnd(24)} ${t.ms.toFixed(2).padStart(9)} ms\n`);
    for (const [rule, hits] of [...ctx.stats.ruleHits].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) opts.log(`rule ${rule.padEnd(40)} ${hits} hits\n`);
  }
  rep.reportAll(ctx.diagnostics.items);
  if (ctx.diagnostics.hasErrors) throw new UserErrorsReported();
  return out;
}
