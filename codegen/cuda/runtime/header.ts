// Locates the launcher's hand-written host runtime (codegen/cuda/runtime/tfc_runtime.h and
// tfc_launcher.h) from this file, in the source tree or in dist/, so `tfc compile --target cuda`
// and the launcher builds can copy them next to launcher.cu.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The runtime headers, in the order launcher.cu includes them. */
export const cudaRuntimeHeaderNames = ['tfc_runtime.h', 'tfc_launcher.h'] as const;

export function cudaRuntimeHeaderPath(name: (typeof cudaRuntimeHeaderNames)[number] = 'tfc_runtime.h'): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const p = join(dir, 'codegen', 'cuda', 'runtime', name);
    if (existsSync(p)) return p;
    const here = join(dir, name);
    if (existsSync(here)) return here;
    dir = resolve(dir, '..');
  }
  throw new Error(`internal: codegen/cuda/runtime/${name} not found`);
}

/** File name -> text of every runtime header. */
export function cudaRuntimeHeaders(): Map<string, string> {
  return new Map(cudaRuntimeHeaderNames.map((n) => [n, readFileSync(cudaRuntimeHeaderPath(n), 'utf8')]));
}
