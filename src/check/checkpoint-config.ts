// Config constants from a checkpoint's config.json: `d = 768 from "n_embd", "hidden_size"` reads
// the first of those keys present in the file (Hugging Face names), so GPT-2 and Llama-style
// folders load without --set. Gives overrides for evaluateConfig (--set still wins: the caller
// merges them on top); a key whose value is not a number, or not an integer where the default
// is one, is TFC313 at the key in the .tfx, naming the key and the file.
import type { Module } from '../../grammar/ast.js';
import { DiagnosticSink, diag } from '../diag/diagnostic.js';
import type { Span } from '../diag/span.js';
import { evaluateConfig } from './config.js';

export interface ConfigFromCheckpoint {
  /** Constant name -> value read from the file (only constants that have a key present). */
  readonly values: Map<string, number>;
  /** Where each value came from: the key and its place in the .tfx (for notes on mismatches). */
  readonly sources: Map<string, { readonly key: string; readonly loc: Span }>;
  /** Constants with keys of which none is in the file: they keep their default. */
  readonly defaulted: string[];
}

/**
 * Reads the keyed constants of `module` from `json` (config.json at `file`), skipping names in
 * `explicit` (--set). Errors go to `sink`.
 */
export function configFromCheckpoint(module: Module, json: Readonly<Record<string, unknown>>, file: string, explicit: ReadonlySet<string>, sink: DiagnosticSink): ConfigFromCheckpoint {
  const values = new Map<string, number>();
  const sources = new Map<string, { key: string; loc: Span }>();
  const defaulted: string[] = [];
  // The defaults, to tell integer constants (dims, counts) from float ones (eps).
  const defaults = evaluateConfig(module, new Map(), new DiagnosticSink()).constants;
  for (const item of module.items) {
    if (item.kind !== 'config') continue;
    for (const e of item.entries) {
      const name = e.name.name;
      if (e.keys === undefined || explicit.has(name)) continue;
      const key = e.keys.find((k) => Object.prototype.hasOwnProperty.call(json, k.value));
      if (key === undefined) {
        defaulted.push(name);
        continue;
      }
      const v = json[key.value];
      const shown = JSON.stringify(v) ?? String(v);
      if (typeof v !== 'number' || !Number.isFinite(v)) {
        sink.report(diag('TFC313', key.loc, `config key "${key.value}" in ${file} is ${shown.length > 40 ? `${shown.slice(0, 40)}...` : shown}: '${name}' needs a number`));
        continue;
      }
      if (defaults.get(name)?.isInt === true && !Number.isInteger(v)) {
        sink.report(diag('TFC313', key.loc, `config key "${key.value}" in ${file} is ${v}: '${name}' is an integer (its default is ${defaults.get(name)?.value ?? '?'})`));
        continue;
      }
      values.set(name, v);
      sources.set(name, { key: key.value, loc: key.loc });
    }
  }
  return { values, sources, defaulted };
}
