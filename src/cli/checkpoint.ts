// Where `tfc run` gets weights and a tokenizer: `--weights FILE`, `--checkpoint DIR` (a Hugging Face
// model folder: config.json, model.safetensors or the shards a model.safetensors.index.json names,
// tokenizer.json or vocab.json + merges.txt), or nothing for a model without weights.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { type Diagnostic, DiagnosticSink, UserErrorsReported, diag } from '../diag/diagnostic.js';
import { type ConfigFromCheckpoint, configFromCheckpoint } from '../check/checkpoint-config.js';
import { dimVars, printDim } from '../base/dim.js';
import { type DimLimit, brokenLimit } from '../check/limits.js';
import type { Graph } from '../graph/ir.js';
import { neededTensors } from '../io/check-tensors.js';
import { SafetensorsError, fileSpan, readSafetensors } from '../io/safetensors.js';
import type { Tensor64 } from '../base/tensor.js';
import type { FileDType } from '../io/safetensors.js';
import { UsageError } from './args.js';
import { readBytes } from './fsio.js';
import type { Reporter } from './report.js';
import { parseOnly } from './stages.js';

/** A checkpoint folder's files (paths), as found on disk. */
export interface CheckpointFolder {
  readonly dir: string;
  /** config.json, parsed; undefined when the folder has none. */
  readonly config?: Readonly<Record<string, unknown>>;
  readonly configPath: string;
  /** model.safetensors, or the shards of model.safetensors.index.json in the order it names them. */
  readonly weightFiles: readonly string[];
}

function readJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as unknown;
  } catch (e) {
    throw new UsageError(`${path} is not valid JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** Finds the files of a checkpoint folder; a missing folder or missing weights is a usage error. */
export function openCheckpoint(dir: string): CheckpointFolder {
  if (!existsSync(dir)) throw new UsageError(`checkpoint folder '${dir}' does not exist`);
  if (!statSync(dir).isDirectory()) throw new UsageError(`--checkpoint takes a folder; '${dir}' is a file (use --weights for one safetensors file)`);
  const configPath = join(dir, 'config.json');
  const config = existsSync(configPath) ? readJson(configPath) : undefined;
  if (config !== undefined && (typeof config !== 'object' || config === null || Array.isArray(config))) throw new UsageError(`${configPath}: expected a JSON object`);
  const indexPath = join(dir, 'model.safetensors.index.json');
  let weightFiles: string[];
  if (existsSync(indexPath)) {
    const index = readJson(indexPath) as { weight_map?: unknown };
    const map = index.weight_map;
    if (typeof map !== 'object' || map === null || !Object.values(map).every((v) => typeof v === 'string')) {
      throw new UsageError(`${indexPath}: expected { "weight_map": { tensor name: shard file } }`);
    }
    const shards = [...new Set(Object.values(map as Record<string, string>))];
    const missing = shards.filter((s) => !existsSync(join(dir, s)));
    if (missing.length > 0) throw new UsageError(`${indexPath} names shard${missing.length > 1 ? 's' : ''} missing from ${dir}: ${missing.join(', ')}`);
    weightFiles = shards.map((s) => join(dir, s));
  } else if (existsSync(join(dir, 'model.safetensors'))) {
    weightFiles = [join(dir, 'model.safetensors')];
  } else {
    weightFiles = [];
  }
  return { dir, configPath, weightFiles, ...(config !== undefined ? { config: config as Record<string, unknown> } : {}) };
}

/** The weight files of a run: --weights, the checkpoint's, or none (then the model must need none). */
export function weightFilesOf(g: Graph, opts: { readonly weights?: string }, checkpoint: CheckpointFolder | undefined): readonly string[] {
  if (opts.weights !== undefined && checkpoint !== undefined) throw new UsageError('give --weights or --checkpoint, not both');
  const needed = neededTensors(g).filter((n) => n.kind === 'weight').length;
  const files = opts.weights !== undefined ? [opts.weights] : (checkpoint?.weightFiles ?? []);
  if (files.length === 0 && needed > 0) {
    throw new UsageError(
      checkpoint !== undefined
        ? `${checkpoint.dir} has no model.safetensors or model.safetensors.index.json, and model ${g.name} needs ${needed} weight${needed === 1 ? '' : 's'}`
        : `model ${g.name} needs ${needed} weight${needed === 1 ? '' : 's'}: pass --weights W.safetensors or --checkpoint DIR`,
    );
  }
  return files;
}

/** All tensors of the weight files, merged (a name in two files is TFC301); `file` names them for messages. */
export function loadWeightFiles(rep: Reporter, files: readonly string[]): { file: string; tensors: Map<string, Tensor64>; fileDTypes: Map<string, FileDType> } {
  const tensors = new Map<string, Tensor64>();
  const fileDTypes = new Map<string, FileDType>();
  const file = files.length === 0 ? '(no weights file)' : files.length === 1 ? (files[0] ?? '') : `${files.length} weight shards (${files[0] ?? ''}, ...)`;
  for (const f of files) {
    let read;
    try {
      read = readSafetensors(readBytes(f, 'weights file'), f);
    } catch (e) {
      if (e instanceof SafetensorsError) {
        rep.report(e.diagnostic);
        throw new UserErrorsReported();
      }
      throw e;
    }
    for (const [name, t] of read.tensors) {
      if (tensors.has(name)) {
        rep.report(diag('TFC301', fileSpan(f), `tensor "${name}" is in two weight files (again in ${f})`));
        throw new UserErrorsReported();
      }
      tensors.set(name, t);
      const dt = read.fileDTypes.get(name);
      if (dt !== undefined) fileDTypes.set(name, dt);
    }
  }
  return { file, tensors, fileDTypes };
}

/** The CUDA launcher reads one safetensors file: refuse shards or none for it. */
export function oneWeightsFile(files: readonly string[], target: string): string {
  const [only] = files;
  if (only === undefined || files.length !== 1) throw new UsageError(`--target ${target} reads exactly one weights file; this run has ${files.length}`);
  return only;
}

/**
 * The config constants a checkpoint's config.json gives (keys named by `from` in the model), under
 * the --set values; TFC313 for a value that does not fit. Empty for an .ir file or no config.json.
 */
export function checkpointOverrides(rep: Reporter, file: string, checkpoint: CheckpointFolder | undefined, explicit: ReadonlyMap<string, number>): ConfigFromCheckpoint | undefined {
  if (checkpoint?.config === undefined || file.endsWith('.ir')) return undefined;
  const module = parseOnly(rep, file);
  const sink = new DiagnosticSink();
  const got = configFromCheckpoint(module, checkpoint.config, checkpoint.configPath, new Set(explicit.keys()), sink);
  rep.reportAll(sink.items);
  rep.flush();
  if (sink.hasErrors) throw new UserErrorsReported();
  return got;
}

/** Shape mismatches (TFC303) get notes naming the config keys the model's constants came from. */
export function withKeyNotes(ds: readonly Diagnostic[], from: ConfigFromCheckpoint | undefined, configPath: string): Diagnostic[] {
  if (from === undefined || from.sources.size === 0) return [...ds];
  const notes = [...from.sources].map(([name, s]) => ({ message: `${name} = ${from.values.get(name) ?? '?'} from config key "${s.key}" in ${configPath}`, loc: s.loc }));
  return ds.map((d) => (d.code === 'TFC303' && d.severity === 'error' ? { ...d, notes: [...d.notes, ...notes] } : d));
}

/** TFC312 when the run's dims break one of the model's `limit`s (the message names both sides). */
export function limitDiagnostic(limits: readonly DimLimit[], dims: ReadonlyMap<string, number>, what: string): Diagnostic | undefined {
  const broken = brokenLimit(limits, dims);
  if (broken === undefined) return undefined;
  const at = [...dims].filter(([k]) => dimVars(broken.limit.dims).includes(k)).map(([k, v]) => `${k} = ${v}`).join(', ');
  return diag('TFC312', broken.limit.loc, `${what} ${at}: ${printDim(broken.limit.dims)} = ${broken.value} breaks the model's limit ${broken.limit.text}`);
}
