// manifest.json (what `tfc compile FILE -o DIR` writes next to DIR/wgsl/*.wgsl): the Plan with
// each kernel's WGSL moved into its own file, plus readable lists of the model's inputs, weights
// and outputs (names, dtypes, shapes as formulas of the dims). Deterministic: objects are built
// with a fixed key order, arrays in plan order, so the same model gives the same bytes.
// `planFromManifest` reads it back (host glue, tests): manifest + wgsl files -> the same Plan.
import type { DType } from '../../graph/types.js';
import { type Plan, type PlanBuffer, type PlanKernel, type SizeExpr, weightSources } from './plan.js';
import { printSize } from './to-size.js';

export const manifestFormat = 'tfc-plan';
export const manifestVersion = 1;

export interface ManifestTensor {
  readonly name: string;
  readonly dtype: DType;
  /** Each axis as a formula of the dims, printed (`B`, `T + P`, `64`). */
  readonly shape: readonly string[];
  /** The plan buffer holding it. */
  readonly buffer: number;
}

export interface ManifestKernel extends Omit<PlanKernel, 'source'> {
  /** Path of the kernel's WGSL relative to the manifest (`wgsl/<name>.wgsl`). */
  readonly wgsl: string;
}

export interface Manifest {
  readonly format: typeof manifestFormat;
  readonly version: typeof manifestVersion;
  readonly model: string;
  /** The target limits the kernels were compiled for (tile sizes, subgroups). */
  readonly target: string;
  readonly dims: readonly string[];
  readonly inputs: readonly ManifestTensor[];
  readonly weights: readonly ManifestTensor[];
  readonly outputs: readonly ManifestTensor[];
  readonly buffers: readonly PlanBuffer[];
  readonly kernels: readonly ManifestKernel[];
  readonly steps: Plan['steps'];
}

/** The file a kernel's WGSL goes to, relative to the manifest. */
export function wgslPath(kernelName: string): string {
  return `wgsl/${kernelName}.wgsl`;
}

function tensorEntry(b: PlanBuffer, name: string): ManifestTensor {
  return { name, dtype: b.dtype, shape: b.shape.map((s: SizeExpr) => printSize(s)), buffer: b.id };
}

/** The weights by buffer, a packed weight (pack-weights) as its parts: the tensors to load, each with its own shape. */
function weightEntries(plan: Plan): ManifestTensor[] {
  return plan.buffers
    .filter((b) => b.kind === 'weight' && b.name !== undefined)
    .flatMap((b) => (b.parts === undefined ? [tensorEntry(b, b.name ?? '')] : weightSources(b).map((w) => ({ name: w.name, dtype: b.dtype, shape: w.shape.map(String), buffer: b.id }))));
}

export function manifestOf(plan: Plan, target: string): Manifest {
  const byKind = (kind: PlanBuffer['kind']): ManifestTensor[] =>
    plan.buffers.filter((b) => b.kind === kind && b.name !== undefined).map((b) => tensorEntry(b, b.name ?? ''));
  const outputs = plan.outputs.map((o) => {
    const b = plan.buffers.find((x) => x.id === o.buffer);
    if (b === undefined) throw new Error(`internal: output ${o.name} has no buffer ${o.buffer}`);
    return tensorEntry(b, o.name);
  });
  return {
    format: manifestFormat,
    version: manifestVersion,
    model: plan.model,
    target,
    dims: plan.dims,
    inputs: byKind('input'),
    weights: weightEntries(plan),
    outputs,
    buffers: plan.buffers,
    kernels: plan.kernels.map((k) => {
      const { source: _source, ...rest } = k;
      return { ...rest, wgsl: wgslPath(k.name) };
    }),
    steps: plan.steps,
  };
}

/** The manifest's JSON text (two-space indent, trailing newline). */
export function manifestJson(plan: Plan, target: string): string {
  return `${JSON.stringify(manifestOf(plan, target), null, 2)}\n`;
}

/** The files of a compiled model folder, by relative path: manifest.json and wgsl/*.wgsl. */
export function planFiles(plan: Plan, target: string): Map<string, string> {
  const files = new Map<string, string>([['manifest.json', manifestJson(plan, target)]]);
  for (const k of plan.kernels) files.set(wgslPath(k.name), k.source.wgsl);
  return files;
}

/** Rebuilds the Plan from a manifest and a reader of the files it names. */
export function planFromManifest(m: Manifest, readText: (relativePath: string) => string): Plan {
  if (m.format !== manifestFormat || m.version !== manifestVersion) {
    throw new Error(`not a tfc plan manifest (format ${String(m.format)} version ${String(m.version)}; expected ${manifestFormat} ${manifestVersion})`);
  }
  const outputs = m.outputs.map((o) => ({ name: o.name, buffer: o.buffer }));
  const kernels: PlanKernel[] = m.kernels.map((k) => {
    const { wgsl, ...rest } = k;
    return { ...rest, source: { wgsl: readText(wgsl) } };
  });
  return { model: m.model, dims: m.dims, buffers: m.buffers, steps: m.steps, kernels, outputs };
}
