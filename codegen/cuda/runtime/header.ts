// Locates codegen/cuda/runtime/tfc_runtime.h (the launcher's host runtime) from this file, in the
// source tree or in dist/, so `tfc compile --target cuda` can copy it next to launcher.cu.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export function cudaRuntimeHeaderPath(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const p = join(dir, 'codegen', 'cuda', 'runtime', 'tfc_runtime.h');
    if (existsSync(p)) return p;
    const here = join(dir, 'tfc_runtime.h');
    if (existsSync(here)) return here;
    dir = resolve(dir, '..');
  }
  throw new Error('internal: codegen/cuda/runtime/tfc_runtime.h not found');
}

export function cudaRuntimeHeader(): string {
  return readFileSync(cudaRuntimeHeaderPath(), 'utf8');
}
