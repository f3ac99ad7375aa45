// The example models the whole-model tests loop over (examples/**/*.tfx), a small config for each
// (in the config names it declares; unknown names are not set), and the float64 reference run
// shared by the WebGPU, CUDA-emulator and Chromium example runs.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { expect } from 'vitest';
import { checkSource } from '../../src/check/check-source.js';
import { randomInputs, randomWeights } from '../../src/cli/random.js';
import type { Diagnostic } from '../../src/diag/diagnostic.js';
import type { Graph } from '../../src/graph/ir.js';
import { interpret } from '../../src/interp/interpret.js';
import { neededTensors } from '../../src/io/check-tensors.js';
import type { Tensor64 } from '../../src/base/tensor.js';

/** The repository root (tests may run with another working directory). */
export const repoRoot = new URL('../../', import.meta.url).pathname;

function tfxFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? tfxFiles(join(dir, e.name)) : e.name.endsWith('.tfx') ? [join(dir, e.name)] : []))
    .sort();
}

/** Every example under examples/, as paths relative to the repository root, sorted. */
export const exampleFiles: readonly string[] = tfxFiles(join(repoRoot, 'examples')).map((f) => relative(repoRoot, f));

/** A small size for each example. */
export function smallOverrides(file: string): Record<string, number> {
  if (file.endsWith('llama-nocache.tfx')) return { vocab: 64, d: 32, heads: 4, kv_heads: 2, layers: 2, ffn: 48 };
  if (file.endsWith('llama.tfx')) return { vocab: 64, d: 32, heads: 4, kv_heads: 2, layers: 2, ffn: 48 };
  if (file.endsWith('transformer.tfx')) return { vocab: 64, d: 32, heads: 4, layers: 1, ffn: 64 };
  if (file.endsWith('charlm.tfx')) return {};
  if (file.endsWith('attention-lse.tfx')) return {}; // attention alone, small by default
  return { vocab: 64, ctx: 32, d: 32, heads: 2, layers: 2 };
}

/** Run-time dims of the example runs: a KV cache of 3 earlier positions, so decode-shaped masks see a past. */
export const exampleDims: ReadonlyMap<string, number> = new Map(Object.entries({ B: 2, T: 9, S: 7, P: 3, NP: 5, MP: 2 }));

export interface ExampleReference {
  /** The checked (unfused) graph at smallOverrides. */
  readonly graph: Graph;
  readonly weights: Map<string, Tensor64>;
  readonly inputs: Map<string, Tensor64>;
  /** The float64 interpreter's outputs on the unfused graph. */
  readonly want: Map<string, Tensor64>;
}

/** The example at its small config with seeded weights and inputs (run-time dims `dims`), and the float64 outputs. */
export function exampleReference(file: string, seeds: { readonly weights: number; readonly inputs: number }, dims: ReadonlyMap<string, number> = exampleDims): ExampleReference {
  const r = checkSource(readFileSync(join(repoRoot, file), 'utf8'), file, new Map(Object.entries(smallOverrides(file))));
  if (r.graph === undefined) throw new Error(`${file}: ${r.diagnostics.map((d) => d.message).join('; ')}`);
  const ds: Diagnostic[] = [];
  const needed = neededTensors(r.graph);
  const weights = randomWeights(needed, seeds.weights, dims, ds);
  const inputs = validPageTables(randomInputs(r.graph, needed, seeds.inputs, dims, ds), dims);
  expect(ds).toEqual([]);
  return { graph: r.graph, weights, inputs, want: interpret(r.graph, { inputs, weights }).outputs };
}

/**
 * Random inputs made valid for a paged cache (gpt2-paged): each row gets its own pages (random
 * ids would let two rows write one slot, and which write wins is unspecified on a GPU; the
 * interpreter keeps the last) and its table starts at logical page 0 (a random first_page would
 * put the new tokens before the table).
 */
export function validPageTables(inputs: Map<string, Tensor64>, dims: ReadonlyMap<string, number>): Map<string, Tensor64> {
  const table = inputs.get('table');
  const pages = dims.get('NP') ?? 1;
  if (table !== undefined) inputs.set('table', { ...table, data: table.data.map((_, i) => i % pages) });
  const first = inputs.get('first_page');
  if (first !== undefined) inputs.set('first_page', { ...first, data: first.data.map(() => 0) });
  return inputs;
}
