/// <reference types="@webgpu/types" preserve="true" />
// Hugging Face checkpoint folders for apps and pages: the same layout `tfc run --checkpoint` reads
// (config.json, model.safetensors or the shards of model.safetensors.index.json, tokenizer files),
// from a Node folder, a URL base (fetch, streamed with progress), a browser directory handle or the
// files of a directory input.
// `openCheckpoint` finds the files; its `weights` go to a generated module's `createModel`, its
// `tokenizer` encodes prompts, and `checkConfig` compares config.json with the constants the
// module was compiled for (a mismatch names the key).
import { RuntimeError } from './errors.js';
import type { WeightSource } from './host.js';
import { type TextTokenizer, loadTokenizer } from './tokenizer.js';

/** Reads one file of a checkpoint: its source, or undefined when the folder has no such file. */
export interface CheckpointReader {
  /** For messages: the folder path or URL. */
  readonly where: string;
  /** Text of a small file (JSON, merges.txt). */
  text(name: string): Promise<string | undefined>;
  /** A weight file as a WeightSource (a path in Node, a streamed Response from a URL, bytes). */
  weights(name: string): Promise<WeightSource | undefined>;
}

export interface Checkpoint {
  readonly where: string;
  /** config.json, or undefined when absent. */
  readonly config?: Readonly<Record<string, unknown>>;
  /** model.safetensors, or every shard model.safetensors.index.json names, in that order. */
  readonly weights: readonly WeightSource[];
  readonly tokenizer?: TextTokenizer;
}

/** Config constants a module was compiled with, and the config.json keys they are read from. */
export type CompiledConfig = Readonly<Record<string, { readonly value: number; readonly keys: readonly string[] }>>;

/** A folder on disk (Node). */
export function folderReader(dir: string): CheckpointReader {
  // A variable specifier: browser bundles never pull `node:fs` in (see device.ts).
  const fsName = 'node:fs/promises';
  const join = (name: string): string => `${dir.replace(/\/+$/, '')}/${name}`;
  const exists = async (name: string): Promise<boolean> => {
    const fs = (await import(/* @vite-ignore */ fsName)) as { access(p: string): Promise<void> };
    return fs.access(join(name)).then(
      () => true,
      () => false,
    );
  };
  return {
    where: dir,
    async text(name) {
      if (!(await exists(name))) return undefined;
      const fs = (await import(/* @vite-ignore */ fsName)) as { readFile(p: string, enc: 'utf8'): Promise<string> };
      return fs.readFile(join(name), 'utf8');
    },
    async weights(name) {
      return (await exists(name)) ? join(name) : undefined;
    },
  };
}

/** Files served under a URL base (`https://host/models/gpt2/`); a 404 means the file is absent. */
export function urlReader(base: string, fetchFn: (url: string) => Promise<Response> = (u) => fetch(u)): CheckpointReader {
  const url = (name: string): string => `${base.endsWith('/') ? base : `${base}/`}${name}`;
  const get = async (name: string): Promise<Response | undefined> => {
    const r = await fetchFn(url(name));
    if (r.status === 404) return undefined;
    if (!r.ok) throw new RuntimeError('weight', `fetching ${url(name)} failed: HTTP ${r.status} ${r.statusText}`, 'TFC311');
    return r;
  };
  return {
    where: base,
    text: async (name) => (await get(name))?.text(),
    weights: (name) => get(name),
  };
}

/** A folder the user picked in a browser (`showDirectoryPicker()`). */
export function directoryReader(dir: FileSystemDirectoryHandle): CheckpointReader {
  const file = async (name: string): Promise<File | undefined> => {
    try {
      return await (await dir.getFileHandle(name)).getFile();
    } catch (e) {
      if (e instanceof DOMException && e.name === 'NotFoundError') return undefined;
      throw e;
    }
  };
  return {
    where: dir.name,
    text: async (name) => (await file(name))?.text(),
    weights: async (name) => {
      const f = await file(name);
      return f === undefined ? undefined : new Response(f.stream(), { headers: { 'content-length': String(f.size) } });
    },
  };
}

/**
 * The files of a folder picked with `<input type="file" webkitdirectory>` (or dropped): each
 * File's `webkitRelativePath` is `folder/name`; files in subfolders are ignored (a checkpoint
 * folder is flat). Files without a relative path are taken by `name`.
 */
export function filesReader(files: Iterable<File>): CheckpointReader {
  const byName = new Map<string, File>();
  let folder: string | undefined;
  for (const f of files) {
    const parts = (f.webkitRelativePath || f.name).split('/');
    if (parts.length > 2) continue;
    if (parts.length === 2) folder ??= parts[0];
    byName.set(parts[parts.length - 1] ?? f.name, f);
  }
  return {
    where: folder ?? 'the picked files',
    text: async (name) => byName.get(name)?.text(),
    weights: async (name) => {
      const f = byName.get(name);
      return f === undefined ? undefined : new Response(f.stream(), { headers: { 'content-length': String(f.size) } });
    },
  };
}

/** `where/name` for messages; a URL base often ends in '/' already. */
function inFolder(where: string, name: string): string {
  return `${where.replace(/\/+$/, '')}/${name}`;
}

async function json(read: CheckpointReader, name: string): Promise<unknown> {
  const text = await read.text(name);
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new RuntimeError('weight', `${inFolder(read.where, name)} is not JSON: ${e instanceof Error ? e.message : String(e)}`, 'TFC311');
  }
}

/** Finds a checkpoint's config, weight files and tokenizer. No weights is an error. */
export async function openCheckpoint(read: CheckpointReader): Promise<Checkpoint> {
  const config = await json(read, 'config.json');
  const index = (await json(read, 'model.safetensors.index.json')) as { weight_map?: unknown } | undefined;
  let names: string[];
  if (index !== undefined) {
    const map = index.weight_map;
    if (typeof map !== 'object' || map === null || !Object.values(map).every((v) => typeof v === 'string')) {
      throw new RuntimeError('weight', `${inFolder(read.where, 'model.safetensors.index.json')}: expected { "weight_map": { tensor: shard file } }`, 'TFC311');
    }
    names = [...new Set(Object.values(map as Record<string, string>))];
  } else {
    names = ['model.safetensors'];
  }
  const weights: WeightSource[] = [];
  for (const n of names) {
    const w = await read.weights(n);
    if (w === undefined) throw new RuntimeError('weight', `${read.where} has no ${n}${index !== undefined ? ' (named by model.safetensors.index.json)' : ' or model.safetensors.index.json'}`, 'TFC311');
    weights.push(w);
  }
  const tokenizer = await loadTokenizer((name) => read.text(name));
  const cfg = typeof config === 'object' && config !== null && !Array.isArray(config) ? (config as Record<string, unknown>) : undefined;
  return { where: read.where, weights, ...(cfg !== undefined ? { config: cfg } : {}), ...(tokenizer !== undefined ? { tokenizer } : {}) };
}

/**
 * Compares config.json with the constants a module was compiled with: the first of a constant's
 * keys present must hold its value. Throws (TFC313) naming the key, both values and the fix.
 */
export function checkConfig(checkpoint: Pick<Checkpoint, 'config' | 'where'>, compiled: CompiledConfig, model: string): void {
  const config = checkpoint.config;
  if (config === undefined) return;
  for (const [name, c] of Object.entries(compiled)) {
    const key = c.keys.find((k) => Object.prototype.hasOwnProperty.call(config, k));
    if (key === undefined) continue;
    const v = config[key];
    if (v !== c.value) {
      throw new RuntimeError(
        'weight',
        `config key "${key}" of ${inFolder(checkpoint.where, 'config.json')} is ${JSON.stringify(v)}, but model ${model} was compiled with ${name} = ${c.value}: recompile with tfc compile MODEL.tfx --checkpoint DIR (or --set ${name}=${JSON.stringify(v)})`,
        'TFC313',
      );
    }
  }
}
