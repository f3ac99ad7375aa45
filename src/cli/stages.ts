// The CLI's door to the compile driver (src/compile/): reads a model file (.tfx source or a dumped
// .ir file), registers its text for caret lines, and starts a Compilation that reports into the
// run's Reporter. A stage that failed throws UserErrorsReported, so the command exits 1 after
// printing its diagnostics.
import type { Module } from '../../grammar/ast.js';
import { formatModule } from '../../grammar/fmt.js';
import { printAst } from '../../grammar/print-ast.js';
import { type Compilation, type CompileOptions, compileModel } from '../compile/model.js';
import type { Target } from '../passes/pass.js';
import { fusionPassNames, pipelines } from '../passes/pipeline.js';
import type { Reporter } from './report.js';
import { readText } from './fsio.js';

export { formatModule, printAst };

export type { Target };

/** Reads `file` and starts its compilation (nothing runs until a stage is read). */
export function openModel(rep: Reporter, file: string, opts: Omit<CompileOptions, 'diagnostics'> = {}): Compilation {
  const text = readText(file, 'model file');
  rep.addSource(file, text);
  return compileModel({ file, text }, { ...opts, diagnostics: rep });
}

/** Parses a source file only (for `fmt` and `--emit ast`). */
export function parseOnly(rep: Reporter, file: string): Module {
  const ast = openModel(rep, file).ast;
  if (ast === undefined) throw new Error(`internal: parseOnly on graph IR ${file}`);
  return ast;
}

/** Pass names of a target's pipeline, in order, with summaries (for --help and --dump-after). */
export function passList(target: Target = 'interp'): readonly { readonly name: string; readonly summary: string }[] {
  return pipelines[target].map((p) => ({ name: p.name, summary: p.summary }));
}

export interface PassRow {
  readonly name: string;
  readonly summary: string;
  /** The targets whose pipeline runs it. */
  readonly targets: readonly Target[];
  /** Left out by --no-fuse. */
  readonly fusion: boolean;
}

/**
 * Every pass of every target's pipeline, once, in pipeline order (each target's list is a
 * subsequence of the longest one, which a test checks), for `tfc compile --help`.
 */
export function passTable(): readonly PassRow[] {
  const targets = Object.keys(pipelines) as Target[];
  const longest = targets.map((t) => pipelines[t]).reduce((a, b) => (b.length > a.length ? b : a));
  return longest.map((p) => ({ name: p.name, summary: p.summary, targets: targets.filter((t) => pipelines[t].some((q) => q.name === p.name)), fusion: fusionPassNames.has(p.name) }));
}
