// Source text -> AST -> graph IR with diagnostics: the front end in one call, used by the CLI
// (`tfc check`, `tfc compile`) and by the tests. Building is skipped after syntax errors.
import { parseTfx } from '../../grammar/parse.js';
import type { Module } from '../../grammar/ast.js';
import { type Diagnostic, DiagnosticSink } from '../diag/diagnostic.js';
import type { Graph } from '../graph/ir.js';
import { buildGraph } from './build.js';

export interface CheckResult {
  readonly module?: Module;
  readonly graph?: Graph;
  readonly diagnostics: Diagnostic[];
}

export function checkSource(text: string, file: string, overrides: ReadonlyMap<string, number> = new Map()): CheckResult {
  const sink = new DiagnosticSink();
  const module = parseTfx(text, file, sink);
  if (sink.hasErrors) return { module, diagnostics: sink.items };
  const graph = buildGraph(module, { overrides }, sink);
  return graph !== undefined ? { module, graph, diagnostics: sink.items } : { module, diagnostics: sink.items };
}
