// The g++ side of the CUDA CPU emulator: where cuda_emu.h is, the flags, and its precompiled
// header in a cache folder. Shared by the launcher builder (launcher.ts) and the emulator driver
// (emulate.ts), which imports the builder: here so that neither imports the other back.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** codegen/cuda/emu/cuda_emu.h, found from this file in src/ or in dist/src/. */
export function emuHeaderPath(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    const p = join(dir, 'codegen', 'cuda', 'emu', 'cuda_emu.h');
    if (existsSync(p)) return p;
    dir = resolve(dir, '..');
  }
  throw new Error('internal: codegen/cuda/emu/cuda_emu.h not found');
}

export const gxxFlags = ['-std=c++20', '-O1', '-pthread', '-w'];

/**
 * cuda_emu.h copied into the cache with a precompiled header next to it (keyed by its hash): the
 * standard headers it pulls in (<barrier>, <thread>, <iostream>) are most of a build's g++ time,
 * and the .gch halves it. g++ silently falls back to the plain header when the .gch does not fit.
 */
export function precompiledHeader(cache: string): { path: string; hash: string } {
  const text = readFileSync(emuHeaderPath());
  const hash = createHash('sha256').update(text).digest('hex').slice(0, 16);
  const dir = join(cache, `emu-${hash}`);
  const path = join(dir, 'cuda_emu.h');
  if (!existsSync(`${path}.gch`)) {
    mkdirSync(dir, { recursive: true });
    const tmpH = `${path}.${process.pid}.tmp`;
    writeFileSync(tmpH, text);
    renameSync(tmpH, path);
    const tmpGch = `${path}.gch.${process.pid}.tmp`;
    execFileSync('g++', [...gxxFlags, '-x', 'c++-header', path, '-o', tmpGch], { stdio: ['ignore', 'ignore', 'pipe'] });
    renameSync(tmpGch, `${path}.gch`);
  }
  return { path, hash };
}
