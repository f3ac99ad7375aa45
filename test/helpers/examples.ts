// The example models the whole-model tests loop over (examples/**/*.tfx), and a small config for
// each, in the config names it declares (unknown names are not set), shared by the WebGPU and the
// CUDA-emulator example runs.
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';

function tfxFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? tfxFiles(join(dir, e.name)) : e.name.endsWith('.tfx') ? [join(dir, e.name)] : []))
    .sort();
}

/** Every example under examples/, as paths relative to the repository root, sorted. */
export const exampleFiles: readonly string[] = tfxFiles('examples').map((f) => relative('.', f));

/** A small size for each example. */
export function smallOverrides(file: string): Record<string, number> {
  if (file.endsWith('llama-nocache.tfx')) return { vocab: 64, d: 32, heads: 4, kv_heads: 2, layers: 2, ffn: 48 };
  if (file.endsWith('llama.tfx')) return { vocab: 64, d: 32, heads: 4, kv_heads: 2, layers: 2, ffn: 48 };
  if (file.endsWith('transformer.tfx')) return { vocab: 64, d: 32, heads: 4, layers: 1, ffn: 64 };
  if (file.endsWith('charlm.tfx')) return {};
  if (file.endsWith('attention-lse.tfx')) return {}; // attention alone, small by default
  return { vocab: 64, ctx: 32, d: 32, heads: 2, layers: 2 };
}
