// The CLI's door to the compile driver (src/compile/): reads a model file (.tfx source or a dumped
// .ir file), registers its text for caret lines, and starts a Compilation that reports into the
// run's Reporter. A stage that failed throws UserErrorsReported, so the command exits 1 after
// printing its diagnostics.
import type { Module } from '../../grammar/ast.js';
import { formatModule } from '../../grammar/fmt.js';
import { printAst } from '../../grammar/print-ast.js';
import { type Compilation, type CompileOptions, compileModel } from '../compile/model.js';
import type { Target } from '../passes/pass.js';
import { pipelines } from '../passes/pipeline.js';
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
